//! Fuzzing of the core's untrusted-input paths, as ordinary tests (issue 14, item 5): the frame
//! decoder ([`SyncRequest::decode`], [`SyncResponse::decode`]), the `Change::from_bytes` paths (the
//! engine parsing pushed changes, the device applying pulled changes and snapshots), the document
//! hydrator ([`Document::hydrate`]) and pushes of mutated but valid-looking changes through the
//! engine.
//!
//! Every input starts from a real one most of the time — a real request of real Automerge
//! changes, real saved documents of every kind, a real response — and is damaged: bits flipped,
//! bytes set, boundary values written (huge LEB128 and CBOR lengths), bytes inserted, deleted,
//! duplicated, truncated; inside an Automerge chunk with its length and checksum made right again
//! (so the damage reaches the column decoders instead of stopping at the checksum); inside the CBOR
//! body of a frame, deflated again; or as CBOR values swapped, removed, renamed and retyped. Pure
//! random inputs are mixed in. Documents are also damaged structurally (random keys, values and
//! types written anywhere in a valid document, with real Automerge operations).
//!
//! Deterministic: every property runs a fixed number of cases from a fixed seed (ChaCha, derived
//! from the property's name), with no failure persistence, so CI sees the same inputs every run.
//! Each property prints how many inputs it tried (`-- --nocapture` shows them). A longer run:
//!
//! ```text
//! FIELDSYNC_FUZZ_CASES=100000 cargo test -p fieldsync-core --test fuzz --release -- --nocapture
//! ```
//!
//! (`FIELDSYNC_FUZZ_CASES` sets the cases of every property; `FIELDSYNC_FUZZ_SEED=<u64>` explores
//! another sequence.)
//!
//! Known upstream bugs. Automerge 0.12 itself panics on some damaged changes and documents (in
//! `op_set2/change/batch.rs`, from `apply_changes`, `load` and `load_incremental`, so also from
//! `SyncEngine::handle` and `Replica::apply_response`), and loads some damaged documents whose saved
//! form it then refuses to load. Those are counted and printed, and their inputs saved, but do not
//! fail a property; a panic anywhere else does. `FIELDSYNC_FUZZ_STRICT=1` makes them fail too.
//! Their crashers are kept as fixtures named `…-automerge-panic-…`. A failing property shrinks its input, writes the bytes that failed to
//! `$CARGO_TARGET_TMPDIR/fuzz-crashers/` and names them: keep each one under
//! `tests/fixtures/corrupt/` (prefix `frame-`, `change-` or `doc-` for the decoder that must refuse
//! it), where [`corrupt_fixtures_are_refused`] checks every file.

use std::cell::RefCell;
use std::fmt::Debug;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use automerge::marks::{ExpandMark, Mark};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, Automerge, Change, ObjId, ObjType, Prop, ReadDoc, ScalarValue};
use ciborium::Value as Cbor;
use fieldsync_core::Role;
use fieldsync_core::chunks;
use fieldsync_core::client::Replica;
use fieldsync_core::docs::*;
use fieldsync_core::engine::{SyncEngine, SyncError};
use fieldsync_core::protocol::*;
use fieldsync_core::storage::{MemoryStorage, Storage};
use fieldsync_core::testing::fixtures::{self, LYON, prepend_notes};
use fieldsync_core::testing::{memory_engine, replica, sync_until_idle};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestError, TestRunner};
use serde_bytes::ByteBuf;

// --- the harness ----------------------------------------------------------------------------------

static TOTAL_TRIED: AtomicU64 = AtomicU64::new(0);
/// Documents Automerge loaded whose saved form it then refused to load (upstream).
static NOT_RELOADING: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The decoder inputs of the case being run, by decoder (`frame`, `change`, `doc`): what a
    /// failure saves.
    static INPUTS: RefCell<Vec<(&'static str, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
}

/// Notes an input handed to a decoder, to be saved if the case fails.
fn keep(decoder: &'static str, bytes: &[u8]) {
    INPUTS.with(|i| i.borrow_mut().push((decoder, bytes.to_vec())));
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// FNV-1a: a seed per property, stable across platforms and releases.
fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Runs `test` on `default_cases` inputs of `strategy` (or `FIELDSYNC_FUZZ_CASES`), from a fixed
/// seed; returns how many inputs were tried. A failure is shrunk, its decoder inputs saved, and
/// the test fails naming them.
fn fuzz<S: Strategy>(
    name: &str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u64
where
    S::Value: Clone + Debug,
{
    let seed = name_seed(name) ^ env_u64("FIELDSYNC_FUZZ_SEED").unwrap_or(0);
    let cases = env_u64("FIELDSYNC_FUZZ_CASES").map_or(default_cases, |c| c.min(u64::from(u32::MAX)) as u32);
    let config = Config {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: 4096,
        ..Config::default()
    };
    install_panic_hook();
    let strict = env_u64("FIELDSYNC_FUZZ_STRICT").is_some_and(|v| v != 0);
    let tried = AtomicU64::new(0);
    let upstream = AtomicU64::new(0);
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |case| {
        tried.fetch_add(1, Ordering::Relaxed);
        INPUTS.with(|i| i.borrow_mut().clear());
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(case))) {
            Ok(result) => result,
            Err(panic) if !strict && panicked_in_automerge() => {
                // A known class of upstream bug (see the module docs): counted and saved, not failed.
                if upstream.fetch_add(1, Ordering::Relaxed) < 8 {
                    save_inputs(&format!("automerge-panic-{name}"));
                }
                drop(panic);
                Ok(())
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    let tried = tried.into_inner();
    let upstream = upstream.into_inner();
    let total = TOTAL_TRIED.fetch_add(tried, Ordering::Relaxed) + tried;
    match result {
        Ok(()) => {
            eprintln!(
                "fuzz {name}: {tried} inputs tried ({cases} cases, seed {seed:#018x}), {upstream} made automerge \
                 itself panic; {total} inputs so far, {} documents so far loaded but did not load once saved",
                NOT_RELOADING.load(Ordering::Relaxed)
            );
            tried
        }
        Err(TestError::Fail(why, minimal)) => {
            INPUTS.with(|i| i.borrow_mut().clear());
            let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(minimal.clone())));
            let saved = save_inputs(name);
            panic!(
                "fuzz {name} failed after {tried} inputs (seed {seed:#018x}): {why}\n\
                 minimal input: {minimal:?}\nrun again: {}\n\
                 its decoder inputs, to keep under tests/fixtures/corrupt/: {saved:#?}",
                match again {
                    Ok(r) => format!("{r:?}"),
                    Err(_) => "panicked".to_string(),
                },
            );
        }
        Err(e) => panic!("fuzz {name}: {e}"),
    }
}

/// Writes the inputs of the case just run to `$CARGO_TARGET_TMPDIR/fuzz-crashers/`; returns their paths.
fn save_inputs(name: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashers");
    let _ = std::fs::create_dir_all(&dir);
    INPUTS.with(|i| {
        i.borrow()
            .iter()
            .enumerate()
            .map(|(n, (decoder, bytes))| {
                let path = dir
                    .join(format!("{decoder}-{name}-{n}-{}.bin", name_seed(&format!("{bytes:?}")) % 100_000));
                let _ = std::fs::write(&path, bytes);
                path.display().to_string()
            })
            .collect()
    })
}

thread_local! {
    /// Where the last panic on this thread happened (source file).
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records where each panic happens; panics inside Automerge are not printed (they are counted).
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let file = info.location().map(|l| l.file().to_string());
            let in_automerge = file.as_deref().is_some_and(is_automerge_source);
            PANIC_AT.with(|p| *p.borrow_mut() = file);
            if !in_automerge || env_u64("FIELDSYNC_FUZZ_STRICT").is_some_and(|v| v != 0) {
                previous(info);
            }
        }));
    });
}

fn is_automerge_source(file: &str) -> bool {
    file.contains("/automerge-0.") || file.contains("\\automerge-0.")
}

/// Whether the panic just caught on this thread happened inside the Automerge crate.
fn panicked_in_automerge() -> bool {
    PANIC_AT.with(|p| p.borrow_mut().take()).as_deref().is_some_and(is_automerge_source)
}

// --- byte mutations ---------------------------------------------------------------------------------

/// Boundary values written over the input: the lengths and counts decoders trust.
const INTERESTING: &[&[u8]] = &[
    &[0x00],
    &[0xff],
    &[0x7f],
    &[0x80],
    &[0xff, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0xff, 0x0f], // LEB128 u32::MAX
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], // LEB128 past u64
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // LEB128 u64::MAX
    &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // CBOR array of 2^64 - 1
    &[0x5b, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00], // CBOR bytes of 64 GiB
    &[0xbf],                         // CBOR indefinite map
    &[0x9f],                         // CBOR indefinite array
    &[0xc6, 0xc6, 0xc6],             // CBOR tags
    &[0x85, 0x6f, 0x4a, 0x83],       // Automerge chunk magic
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Interesting(Index, Index),
    Insert(Index, Vec<u8>),
    Delete(Index, u8),
    Duplicate(Index, Index, u8),
    Truncate(Index),
    /// To a few bytes: headers cut short.
    TruncateTo(u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(i, v)| Mutation::Interesting(i, v)),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), 1u8..32).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<Index>(), any::<Index>(), 1u8..32).prop_map(|(a, b, n)| Mutation::Duplicate(a, b, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (0u8..12).prop_map(Mutation::TruncateTo),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..5)
}

fn mutate(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    for m in mutations {
        let len = bytes.len();
        if len == 0 {
            if let Mutation::Insert(_, b) = m {
                bytes.extend_from_slice(b);
            }
            continue;
        }
        match m {
            Mutation::Flip(i, bit) => bytes[i.index(len)] ^= 1 << bit,
            Mutation::Set(i, b) => bytes[i.index(len)] = *b,
            Mutation::Interesting(i, v) => {
                let value = INTERESTING[v.index(INTERESTING.len())];
                let at = i.index(len);
                let n = value.len().min(len - at);
                bytes[at..at + n].copy_from_slice(&value[..n]);
            }
            Mutation::Insert(i, b) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let at = i.index(len);
                bytes.drain(at..(at + usize::from(*n)).min(len));
            }
            Mutation::Duplicate(from, to, n) => {
                let at = from.index(len);
                let piece = bytes[at..(at + usize::from(*n)).min(len)].to_vec();
                let to = to.index(len + 1);
                bytes.splice(to..to, piece);
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(len)),
            Mutation::TruncateTo(n) => bytes.truncate(usize::from(*n)),
        }
    }
}

// --- Automerge chunks: SHA-256, framing ------------------------------------------------------------

/// SHA-256: what Automerge's chunk checksums and change hashes are made of (the `sha2` Automerge
/// itself uses). Checked against the hashes of real changes in [`the_chunk_tools_reproduce_real_chunks`].
fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}

/// The chunks (kind, data) of well-formed Automerge bytes (a saved document, changes, both).
fn split_chunks(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    chunks::split(bytes).map(|cs| cs.iter().map(|c| (c.kind, c.data.to_vec())).collect()).unwrap_or_default()
}

/// Whether a parsed change's chunk checksum is the start of its hash (`Change::from_bytes` does
/// not check it; `Automerge::load` does).
fn checksum_ok(change: &Change) -> bool {
    change.raw_bytes().get(4..8) == Some(&change.hash().0[..4])
}

/// How a base input is damaged.
#[derive(Debug, Clone)]
enum Damage {
    /// Left as it is (valid pieces let the others reach further).
    Intact,
    /// Anywhere, headers included.
    Raw(Vec<Mutation>),
    /// Inside the data of one chunk, whose length and checksum are then made right again.
    Body(Index, Vec<Mutation>),
    /// Replaced with random bytes, sometimes behind a valid chunk header.
    Random(Option<u8>, Vec<u8>),
    /// In the first chunk's header (magic, checksum, chunk type, length): `(offset, xor)`.
    Header(Vec<(u8, u8)>),
}

fn damage(intact_weight: u32) -> impl Strategy<Value = Damage> {
    prop_oneof![
        intact_weight => Just(Damage::Intact),
        4 => mutations().prop_map(Damage::Raw),
        5 => (any::<Index>(), mutations()).prop_map(|(i, m)| Damage::Body(i, m)),
        1 => (proptest::option::of(0u8..4), proptest::collection::vec(any::<u8>(), 0..200))
            .prop_map(|(k, b)| Damage::Random(k, b)),
        2 => proptest::collection::vec((0u8..11, 1u8..=255), 1..3).prop_map(Damage::Header),
    ]
}

fn apply_damage(base: &[u8], damage: &Damage) -> Vec<u8> {
    match damage {
        Damage::Intact => base.to_vec(),
        Damage::Raw(m) => {
            let mut b = base.to_vec();
            mutate(&mut b, m);
            b
        }
        Damage::Body(which, m) => {
            let mut chunks = split_chunks(base);
            if chunks.is_empty() {
                let mut b = base.to_vec();
                mutate(&mut b, m);
                return b;
            }
            let i = which.index(chunks.len());
            mutate(&mut chunks[i].1, m);
            chunks.iter().flat_map(|(kind, data)| chunks::frame(*kind, data)).collect()
        }
        Damage::Header(flips) => {
            let mut b = base.to_vec();
            for (at, xor) in flips {
                if let Some(byte) = b.get_mut(usize::from(*at)) {
                    *byte ^= xor;
                }
            }
            b
        }
        Damage::Random(None, b) => b.clone(),
        Damage::Random(Some(kind), b) => chunks::frame(*kind, b),
    }
}

// --- the world: a team, its server, two devices ----------------------------------------------------

const TEAM: &str = "t";
/// What alice typed and has not sent: it must never be lost.
const ALICE_NOTE: &str = "ALICE-NOTE ";
const ALICE_VISIT: &str = "ALICE-VISIT";

/// A server holding a territory, two customers and a plan; the manager's tablet, synced after she
/// edited a customer; alice's phone, synced, then with unsent edits (a note on cust-1, a new
/// visit v1 with a check-in) and the request carrying them prepared (in flight).
struct World {
    engine: SyncEngine<MemoryStorage>,
    alice: Replica,
    maria: Replica,
    request: SyncRequest,
    maria_change: Vec<u8>,
}

fn plan() -> Document {
    let mut p = Plan::new(
        "plan-1",
        "2026-Q1",
        Cadence { a_days: 14, b_days: 30, c_days: 90 },
        TierThresholds { a_min_score: 40_000.0, b_min_score: 10_000.0 },
    );
    p.quotas.push(Quota { rep: Some("alice".into()), tier: Tier::A, amount: 5.0 });
    Document::Plan(p)
}

fn world() -> World {
    let engine = memory_engine(|_| {});
    let mut docs = fixtures::territory_with_customer("terr-1", &["alice"], "cust-1");
    docs.push(fixtures::customer("cust-2", "bob", None, fixtures::offset(LYON, 800.0, 0.0)).into());
    docs.push(plan());
    engine.write_as_server(TEAM, &docs, 0).expect("seed the team");
    let mut alice = replica("pa", TEAM, "alice", Role::Rep);
    let mut maria = replica("tab", TEAM, "maria", Role::Manager);
    sync_until_idle(&engine, &mut alice, 1_000);
    sync_until_idle(&engine, &mut maria, 1_000);
    maria.update("cust-1", 2_000, prepend_notes("MARIA-NOTE ")).expect("maria's note");
    let maria_change = maria.prepare_request().push[0].changes[0].to_vec();
    sync_until_idle(&engine, &mut maria, 3_000);
    sync_until_idle(&engine, &mut alice, 4_000);
    alice.update("cust-1", 5_000, prepend_notes(ALICE_NOTE)).expect("alice's note");
    let mut visit = fixtures::visit("v1", "cust-1", "alice", 5_000);
    visit.notes = ALICE_VISIT.into();
    visit.checkins.push(fixtures::checkin("v1-c1", LYON, 5.0, 5_000));
    alice.create(Document::Visit(visit), 5_000).expect("alice's visit");
    let request = alice.prepare_request();
    assert_eq!(request.push.len(), 2, "{request:?}");
    World { engine, alice, maria, request, maria_change }
}

impl World {
    fn stored(&self, doc_id: &str) -> Vec<u8> {
        self.engine.storage().load_doc(TEAM, doc_id).expect("storage").expect("stored document")
    }

    /// Saved documents of every kind (some of several chunks, as storage keeps them).
    fn saved_docs(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> =
            ["cust-1", "cust-2", "terr-1", "plan-1"].iter().map(|id| self.stored(id)).collect();
        out.push(Automerge::load(&self.stored("cust-1")).expect("load").save());
        out.push(self.alice.local("v1").expect("v1").saved().to_vec());
        out
    }

    /// Every real change chunk: alice's unsent ones, maria's, the server's.
    fn changes(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> =
            self.request.push.iter().flat_map(|p| p.changes.iter().map(|c| c.to_vec())).collect();
        out.push(self.maria_change.clone());
        for id in ["cust-1", "terr-1", "plan-1"] {
            let doc = Automerge::load(&self.stored(id)).expect("load");
            out.extend(doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()));
        }
        out
    }
}

/// A request frame of `push` from alice, as her phone would send it.
fn alice_request(w: &World, push: Vec<DocPush>) -> SyncRequest {
    SyncRequest { device_id: w.alice.device_id().to_string(), cursor: w.alice.cursor().clone(), push }
}

// --- checks shared by the properties ---------------------------------------------------------------

/// A hydrated document must be one the rest of the core can work with: its kind field is its
/// variant's, and validating, checking keys, computing the audience, serialising and reconciling it
/// back never panic, and what it reconciles into hydrates again.
fn check_document(doc: &Automerge) -> Result<(), TestCaseError> {
    let _ = kind_of(doc);
    let Ok(typed) = Document::hydrate(doc) else { return Ok(()) };
    let kind_field = match &typed {
        Document::Customer(d) => &d.kind,
        Document::Visit(d) => &d.kind,
        Document::Territory(d) => &d.kind,
        Document::Plan(d) => &d.kind,
    };
    prop_assert_eq!(kind_field.as_str(), typed.kind().as_str());
    let _ = typed.validate();
    let _ = check_known_keys(doc, &typed);
    let _ = typed.audience(&|_| vec!["alice".to_string()]);
    let _ = serde_json::to_string(&typed);
    // As a device edits: reconciled into the document it was read from (a Text remembers it).
    let Ok(mut copy) = AutoCommit::load(&doc.save()) else {
        // Automerge loaded it but cannot load what it saves of it (upstream, see the module docs).
        NOT_RELOADING.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    };
    let mut edited = typed.clone();
    if let Some(notes) = edited.notes_mut() {
        notes.splice(0, 0, "x");
    }
    edited.reconcile_into(&mut copy).map_err(|e| TestCaseError::fail(format!("reconcile: {e}")))?;
    let again = Document::hydrate(&copy);
    prop_assert!(again.is_ok(), "a hydrated document does not hydrate once reconciled: {again:?}");
    Ok(())
}

/// Loads bytes as a document and checks what hydrates; `Err` when they do not load.
fn load_and_check(bytes: &[u8]) -> Result<Result<(), String>, TestCaseError> {
    keep("doc", bytes);
    let doc = match Automerge::load(bytes) {
        Ok(doc) => doc,
        Err(e) => return Ok(Err(e.to_string())),
    };
    check_document(&doc)?;
    Ok(Ok(()))
}

/// The store must still be readable as it stands (not through the engine's cache), and devices
/// must still sync with it: the manager's tablet pulling the feed, and a new tablet bootstrapping.
fn check_storage(w: &World, now_ms: i64) -> Result<(), TestCaseError> {
    let storage = w.engine.storage();
    let docs = storage.list_docs(TEAM, None, "", 100_000).map_err(|e| TestCaseError::fail(e.to_string()))?;
    for (id, kind) in &docs {
        let bytes =
            storage.load_doc(TEAM, id).map_err(|e| TestCaseError::fail(e.to_string()))?.unwrap_or_default();
        let doc = Automerge::load(&bytes);
        prop_assert!(doc.is_ok(), "stored document {id} no longer loads: {:?}", doc.err());
        let typed = doc.as_ref().map_err(|e| TestCaseError::fail(e.to_string())).and_then(|d| {
            Document::hydrate(d).map_err(|e| TestCaseError::fail(format!("stored document {id}: {e}")))
        })?;
        prop_assert_eq!(typed.kind(), *kind);
        prop_assert!(typed.validate().is_ok(), "stored document {id} is invalid: {:?}", typed.validate());
    }
    let team = w.engine.team_documents(TEAM);
    prop_assert!(team.is_ok(), "{:?}", team.err());
    for device in [w.maria.clone(), replica("tab2", TEAM, "maria", Role::Manager)] {
        let mut device = device;
        for round in 0.. {
            prop_assert!(round < 50, "{} does not finish syncing", device.device_id());
            let req = device.prepare_request();
            let resp = w.engine.handle(device.principal(), &req, now_ms);
            let resp =
                resp.map_err(|e| TestCaseError::fail(format!("{} cannot sync: {e}", device.device_id())))?;
            let report = device.apply_response(&resp);
            let report = report.map_err(|e| {
                TestCaseError::fail(format!("{} cannot apply what it pulled: {e}", device.device_id()))
            })?;
            if !report.more && device.outbox_len() == 0 {
                break;
            }
        }
        for (id, _) in &docs {
            prop_assert_eq!(device.heads(id), w.engine.doc_heads(TEAM, id).ok().flatten(), "{}", id);
        }
    }
    Ok(())
}

// --- structural edits of Automerge documents ------------------------------------------------------

/// Keys and strings the schema knows: random structure made of them gets past the first checks.
const VOCAB: &[&str] = &[
    "kind",
    "schema",
    "id",
    "name",
    "location",
    "lat",
    "lon",
    "datum",
    "address",
    "timezone",
    "opening_hours",
    "weekday",
    "open_min",
    "close_min",
    "potential_value",
    "close_probability",
    "tier",
    "tier_set_by",
    "tier_set_at_ms",
    "follow_up_status",
    "opportunity_stage",
    "owner_rep",
    "territory",
    "tags",
    "notes",
    "phone",
    "geofence_m",
    "created_by",
    "customer_id",
    "rep",
    "planned_start_ms",
    "planned_end_ms",
    "state",
    "checkins",
    "accuracy_m",
    "device_time_ms",
    "mock_location",
    "checkout",
    "outcome",
    "next_step",
    "verification",
    "status",
    "distance_m",
    "reasons",
    "code",
    "message",
    "received_at_ms",
    "review",
    "decision",
    "by",
    "comment",
    "at_ms",
    "reps",
    "polygons",
    "sub_areas",
    "customer_ids",
    "quarter",
    "quotas",
    "amount",
    "cadence",
    "a_days",
    "b_days",
    "c_days",
    "thresholds",
    "a_min_score",
    "b_min_score",
    "focus_share",
    "customer",
    "visit",
    "plan",
    "A",
    "B",
    "C",
    "Planned",
    "CheckedIn",
    "Completed",
    "planned",
    "checked_in",
    "verified",
    "flagged",
    "invalid",
    "Verified",
    "Approved",
    "approved",
    "wgs84",
    "gcj02",
    "alice",
    "bob",
    "cust-1",
    "v1",
    "terr-1",
    "Europe/Paris",
    "",
];

fn vocab_string() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => any::<Index>().prop_map(|i| VOCAB[i.index(VOCAB.len())].to_string()),
        1 => ".{0,12}",
        1 => Just("é🦀\u{0}\u{202e}".to_string()),
    ]
}

fn scalar() -> impl Strategy<Value = ScalarValue> {
    prop_oneof![
        4 => vocab_string().prop_map(|s| ScalarValue::Str(s.into())),
        2 => prop_oneof![any::<i64>(), Just(0i64), Just(1), Just(-1), Just(i64::MIN), Just(i64::MAX)].prop_map(ScalarValue::Int),
        2 => prop_oneof![any::<u64>(), Just(0u64), Just(1), Just(7), Just(u64::MAX)].prop_map(ScalarValue::Uint),
        2 => prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), Just(-0.0), Just(45.75), Just(1e308)]
            .prop_map(ScalarValue::F64),
        1 => any::<i64>().prop_map(ScalarValue::counter),
        1 => any::<i64>().prop_map(ScalarValue::Timestamp),
        1 => any::<bool>().prop_map(ScalarValue::Boolean),
        1 => Just(ScalarValue::Null),
        1 => proptest::collection::vec(any::<u8>(), 0..16).prop_map(ScalarValue::Bytes),
        1 => (10u8..16, proptest::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(type_code, bytes)| ScalarValue::Unknown { type_code, bytes }),
    ]
}

/// A value to write into a document.
#[derive(Debug, Clone)]
enum AValue {
    Scalar(ScalarValue),
    Map(Vec<(String, AValue)>),
    List(Vec<AValue>),
    Text(String),
}

fn avalue() -> impl Strategy<Value = AValue> {
    let leaf = prop_oneof![
        6 => scalar().prop_map(AValue::Scalar),
        1 => vocab_string().prop_map(AValue::Text),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec((vocab_string(), inner.clone()), 0..4).prop_map(AValue::Map),
            proptest::collection::vec(inner, 0..4).prop_map(AValue::List),
        ]
    })
}

#[derive(Debug, Clone)]
enum Key {
    Existing(Index),
    Named(String),
}

#[derive(Debug, Clone)]
enum StructOp {
    Put(Key, AValue),
    Delete(Key),
    Increment(Key, i64),
    Insert(Index, AValue),
    Splice(Index, u8, String),
    Mark(Index, Index, String, ScalarValue),
}

/// An operation on the object reached from the root by following `path` (through child objects).
#[derive(Debug, Clone)]
struct StructEdit {
    path: Vec<Index>,
    op: StructOp,
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![any::<Index>().prop_map(Key::Existing), vocab_string().prop_map(Key::Named)]
}

fn struct_edit() -> impl Strategy<Value = StructEdit> {
    let op = prop_oneof![
        5 => (key(), avalue()).prop_map(|(k, v)| StructOp::Put(k, v)),
        2 => key().prop_map(StructOp::Delete),
        1 => (key(), any::<i64>()).prop_map(|(k, n)| StructOp::Increment(k, n)),
        2 => (any::<Index>(), avalue()).prop_map(|(i, v)| StructOp::Insert(i, v)),
        2 => (any::<Index>(), 0u8..8, vocab_string()).prop_map(|(i, d, s)| StructOp::Splice(i, d, s)),
        1 => (any::<Index>(), any::<Index>(), vocab_string(), scalar()).prop_map(|(a, b, n, v)| StructOp::Mark(a, b, n, v)),
    ];
    (proptest::collection::vec(any::<Index>(), 0..4), op).prop_map(|(path, op)| StructEdit { path, op })
}

fn struct_edits() -> impl Strategy<Value = Vec<StructEdit>> {
    proptest::collection::vec(struct_edit(), 1..6)
}

fn children(doc: &AutoCommit, obj: &ObjId) -> Vec<ObjId> {
    match doc.object_type(obj) {
        Ok(ObjType::Map | ObjType::Table) => doc
            .map_range(obj, ..)
            .filter(|i| matches!(i.value, automerge::ValueRef::Object(_)))
            .map(|i| i.id())
            .collect(),
        Ok(ObjType::List) => doc
            .list_range(obj, ..)
            .filter(|i| matches!(i.value, automerge::ValueRef::Object(_)))
            .map(|i| i.id())
            .collect(),
        _ => vec![],
    }
}

fn write_value(doc: &mut AutoCommit, obj: &ObjId, at: Prop, value: &AValue, insert: bool) {
    let made = match value {
        AValue::Scalar(s) => {
            let _ = match (at, insert) {
                (Prop::Seq(i), true) => doc.insert(obj, i, s.clone()),
                (p, _) => doc.put(obj, p, s.clone()),
            };
            return;
        }
        AValue::Map(_) => ObjType::Map,
        AValue::List(_) => ObjType::List,
        AValue::Text(_) => ObjType::Text,
    };
    let child = match (at, insert) {
        (Prop::Seq(i), true) => doc.insert_object(obj, i, made),
        (p, _) => doc.put_object(obj, p, made),
    };
    let Ok(child) = child else { return };
    match value {
        AValue::Map(entries) => {
            for (k, v) in entries {
                write_value(doc, &child, Prop::Map(k.clone()), v, false);
            }
        }
        AValue::List(items) => {
            for (i, v) in items.iter().enumerate() {
                write_value(doc, &child, Prop::Seq(i), v, true);
            }
        }
        AValue::Text(s) => {
            let _ = doc.splice_text(&child, 0, 0, s);
        }
        AValue::Scalar(_) => {}
    }
}

/// Applies structural edits with real Automerge operations; operations Automerge refuses are skipped.
fn apply_struct_edits(doc: &mut AutoCommit, edits: &[StructEdit]) {
    for e in edits {
        let mut obj = automerge::ROOT;
        for step in &e.path {
            let kids = children(doc, &obj);
            if kids.is_empty() {
                break;
            }
            obj = kids[step.index(kids.len())].clone();
        }
        let Ok(obj_type) = doc.object_type(&obj) else { continue };
        let len = doc.length(&obj);
        let map_key = |doc: &AutoCommit, k: &Key| -> String {
            match k {
                Key::Named(s) => s.clone(),
                Key::Existing(i) => {
                    let keys: Vec<String> = doc.keys(&obj).collect();
                    if keys.is_empty() { "kind".to_string() } else { keys[i.index(keys.len())].clone() }
                }
            }
        };
        let seq_at = |k: &Key, extra: usize| -> Option<usize> {
            match k {
                _ if len + extra == 0 => None,
                Key::Existing(i) => Some(i.index(len + extra)),
                Key::Named(s) => Some(s.len() % (len + extra)),
            }
        };
        match (obj_type, &e.op) {
            (ObjType::Map | ObjType::Table, StructOp::Put(k, v)) => {
                let key = map_key(doc, k);
                write_value(doc, &obj, Prop::Map(key), v, false);
            }
            (ObjType::Map | ObjType::Table, StructOp::Insert(_, v)) => {
                write_value(doc, &obj, Prop::Map("notes".into()), v, false);
            }
            (ObjType::Map | ObjType::Table, StructOp::Delete(k)) => {
                let key = map_key(doc, k);
                let _ = doc.delete(&obj, key.as_str());
            }
            (ObjType::Map | ObjType::Table, StructOp::Increment(k, n)) => {
                let key = map_key(doc, k);
                let _ = doc.increment(&obj, key.as_str(), *n);
            }
            (ObjType::List, StructOp::Put(k, v)) => {
                if let Some(i) = seq_at(k, 0) {
                    write_value(doc, &obj, Prop::Seq(i), v, false);
                }
            }
            (ObjType::List, StructOp::Insert(i, v)) => {
                write_value(doc, &obj, Prop::Seq(i.index(len + 1)), v, true)
            }
            (ObjType::List | ObjType::Text, StructOp::Delete(k)) => {
                if let Some(i) = seq_at(k, 0) {
                    let _ = doc.delete(&obj, i);
                }
            }
            (ObjType::List, StructOp::Increment(k, n)) => {
                if let Some(i) = seq_at(k, 0) {
                    let _ = doc.increment(&obj, i, *n);
                }
            }
            (ObjType::Text, StructOp::Splice(i, del, s)) => {
                let _ = doc.splice_text(&obj, i.index(len + 1), isize::from(*del as i8), s);
            }
            (ObjType::Text, StructOp::Mark(a, b, name, value)) => {
                let (a, b) = (a.index(len + 1), b.index(len + 1));
                let mark = Mark::new(name.clone(), value.clone(), a.min(b), a.max(b));
                let _ = doc.mark(&obj, mark, ExpandMark::Both);
            }
            (ObjType::Text, StructOp::Put(_, AValue::Text(s)) | StructOp::Insert(_, AValue::Text(s))) => {
                let _ = doc.update_text(&obj, s);
            }
            _ => {}
        }
    }
    let _ = doc.commit();
}

// --- frames -----------------------------------------------------------------------------------------

/// The CBOR body of a well-formed frame (inflated when it was deflated).
fn frame_body(frame: &[u8]) -> Vec<u8> {
    match frame[5] {
        0 => frame[6..].to_vec(),
        _ => {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(&frame[6..]).read_to_end(&mut out).expect("inflate");
            out
        }
    }
}

fn reframe(body: &[u8], deflate: bool) -> Vec<u8> {
    let mut out = b"FSYN\x01".to_vec();
    if deflate {
        out.push(1);
        let mut enc = flate2::write::DeflateEncoder::new(out, flate2::Compression::fast());
        enc.write_all(body).expect("deflate");
        enc.finish().expect("deflate")
    } else {
        out.push(0);
        out.extend_from_slice(body);
        out
    }
}

#[derive(Debug, Clone)]
enum CborOp {
    Replace(Cbor),
    /// On the chosen entry of an array or a map.
    Remove(Index),
    DuplicateEntry(Index),
    RenameKey(Index, Cbor),
    Wrap,
    Tag(u64),
}

#[derive(Debug, Clone)]
struct CborEdit {
    path: Vec<Index>,
    op: CborOp,
}

fn cbor_leaf() -> impl Strategy<Value = Cbor> {
    prop_oneof![
        2 => any::<i64>().prop_map(|n| Cbor::Integer(n.into())),
        1 => prop_oneof![Just(u64::MAX), Just(u64::from(u32::MAX)), Just(5001u64), Just(200_001)]
            .prop_map(|n| Cbor::Integer(n.into())),
        1 => prop_oneof![any::<f64>(), Just(f64::NAN)].prop_map(Cbor::Float),
        3 => prop_oneof![
            vocab_string(),
            Just("Start".to_string()),
            Just("Feed".to_string()),
            Just("Bootstrap".to_string()),
            Just("seq".to_string()),
            Just("doc_id".to_string()),
            Just("changes".to_string()),
            Just("push".to_string()),
            Just("server".to_string()),
        ]
        .prop_map(Cbor::Text),
        2 => proptest::collection::vec(any::<u8>(), 0..48).prop_map(Cbor::Bytes),
        1 => any::<bool>().prop_map(Cbor::Bool),
        1 => Just(Cbor::Null),
        1 => Just(Cbor::Array(vec![])),
        1 => Just(Cbor::Map(vec![])),
        1 => any::<u64>().prop_map(|n| Cbor::Map(vec![(Cbor::Text("Feed".into()), Cbor::Map(vec![(Cbor::Text("seq".into()), Cbor::Integer(n.into()))]))])),
    ]
}

fn cbor_value() -> impl Strategy<Value = Cbor> {
    cbor_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Cbor::Array),
            proptest::collection::vec((cbor_leaf(), inner.clone()), 0..6).prop_map(Cbor::Map),
            (0u64..64, inner).prop_map(|(t, v)| Cbor::Tag(t, Box::new(v))),
        ]
    })
}

fn cbor_edit() -> impl Strategy<Value = CborEdit> {
    let op = prop_oneof![
        4 => cbor_value().prop_map(CborOp::Replace),
        2 => any::<Index>().prop_map(CborOp::Remove),
        2 => any::<Index>().prop_map(CborOp::DuplicateEntry),
        2 => (any::<Index>(), cbor_leaf()).prop_map(|(i, k)| CborOp::RenameKey(i, k)),
        1 => Just(CborOp::Wrap),
        1 => (0u64..300).prop_map(CborOp::Tag),
    ];
    (proptest::collection::vec(any::<Index>(), 0..6), op).prop_map(|(path, op)| CborEdit { path, op })
}

fn edit_cbor(value: &mut Cbor, path: &[Index], op: &CborOp) {
    if let Some((step, rest)) = path.split_first() {
        let child = match value {
            Cbor::Array(items) if !items.is_empty() => {
                let n = items.len();
                Some(&mut items[step.index(n)])
            }
            Cbor::Map(entries) if !entries.is_empty() => {
                let n = entries.len();
                Some(&mut entries[step.index(n)].1)
            }
            Cbor::Tag(_, inner) => Some(inner.as_mut()),
            _ => None,
        };
        if let Some(child) = child {
            return edit_cbor(child, rest, op);
        }
    }
    match (op, &mut *value) {
        (CborOp::Replace(v), _) => *value = v.clone(),
        (CborOp::Remove(i), Cbor::Array(items)) if !items.is_empty() => {
            items.remove(i.index(items.len()));
        }
        (CborOp::Remove(i), Cbor::Map(entries)) if !entries.is_empty() => {
            entries.remove(i.index(entries.len()));
        }
        (CborOp::DuplicateEntry(i), Cbor::Array(items)) if !items.is_empty() => {
            let item = items[i.index(items.len())].clone();
            items.push(item);
        }
        (CborOp::DuplicateEntry(i), Cbor::Map(entries)) if !entries.is_empty() => {
            let entry = entries[i.index(entries.len())].clone();
            entries.push(entry);
        }
        (CborOp::RenameKey(i, k), Cbor::Map(entries)) if !entries.is_empty() => {
            let n = entries.len();
            entries[i.index(n)].0 = k.clone();
        }
        (CborOp::Wrap, _) => *value = Cbor::Array(vec![value.clone()]),
        (CborOp::Tag(t), _) => *value = Cbor::Tag(*t, Box::new(value.clone())),
        _ => *value = Cbor::Null,
    }
}

#[derive(Debug, Clone)]
enum FrameDamage {
    Raw(Vec<Mutation>),
    /// The CBOR body's bytes, framed again (deflated or not).
    Body(Vec<Mutation>, bool),
    /// The CBOR body as values, framed again.
    Values(Vec<CborEdit>, bool),
}

fn frame_damage() -> impl Strategy<Value = FrameDamage> {
    prop_oneof![
        3 => mutations().prop_map(FrameDamage::Raw),
        3 => (mutations(), any::<bool>()).prop_map(|(m, d)| FrameDamage::Body(m, d)),
        4 => (proptest::collection::vec(cbor_edit(), 1..4), any::<bool>()).prop_map(|(e, d)| FrameDamage::Values(e, d)),
    ]
}

fn damage_frame(frame: &[u8], damage: &FrameDamage) -> Vec<u8> {
    match damage {
        FrameDamage::Raw(m) => {
            let mut b = frame.to_vec();
            mutate(&mut b, m);
            b
        }
        FrameDamage::Body(m, deflate) => {
            let mut body = frame_body(frame);
            mutate(&mut body, m);
            reframe(&body, *deflate)
        }
        FrameDamage::Values(edits, deflate) => {
            let mut value: Cbor =
                ciborium::from_reader(&frame_body(frame)[..]).expect("a real frame is CBOR");
            for e in edits {
                edit_cbor(&mut value, &e.path, &e.op);
            }
            let mut body = Vec::new();
            ciborium::into_writer(&value, &mut body).expect("encode CBOR");
            reframe(&body, *deflate)
        }
    }
}

/// Both decoders on `bytes`: an error, or a message within the limits that encodes back to the
/// same message.
fn check_frame(bytes: &[u8]) -> Result<(), TestCaseError> {
    keep("frame", bytes);
    if let Ok(req) = SyncRequest::decode(bytes) {
        prop_assert!(req.push.len() <= MAX_PUSH_DOCS);
        prop_assert!(req.push.iter().map(|p| p.changes.len()).sum::<usize>() <= MAX_PUSH_CHANGES);
        let again = SyncRequest::decode(&req.encode());
        prop_assert!(again.as_ref().is_ok_and(|a| *a == req), "request does not round-trip: {again:?}");
    }
    if let Ok(resp) = SyncResponse::decode(bytes) {
        let again = SyncResponse::decode(&resp.encode());
        // NaN-free by construction (no floats in a response), so equality is meaningful.
        prop_assert!(again.as_ref().is_ok_and(|a| *a == resp), "response does not round-trip: {again:?}");
    }
    Ok(())
}

/// Real frames: alice's request (deflated: it is large), a small request of one change (not
/// deflated), the server's answer to alice, a bootstrap page for a new tablet.
fn real_frames(w: &World) -> Vec<Vec<u8>> {
    let small = alice_request(
        w,
        vec![DocPush { changes: vec![ByteBuf::from(w.maria_change.clone())], ..w.request.push[0].clone() }],
    );
    let answer = w.engine.handle(w.alice.principal(), &w.request, 6_000).expect("alice's push");
    let bootstrap = replica("tab2", TEAM, "maria", Role::Manager).prepare_request();
    let page = w
        .engine
        .handle(
            &fieldsync_core::Principal { team: TEAM.into(), user: "maria".into(), role: Role::Manager },
            &bootstrap,
            6_000,
        )
        .expect("bootstrap");
    vec![w.request.encode(), small.encode(), answer.encode(), page.encode(), bootstrap.encode()]
}

// --- the properties ---------------------------------------------------------------------------------

#[test]
fn the_chunk_tools_reproduce_real_chunks() {
    // SHA-256 of "abc" (FIPS 180-4, appendix B.1).
    assert_eq!(
        sha256(b"abc")[..8],
        [0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea],
        "the SHA-256 of the fuzzer is wrong"
    );
    let w = world();
    for bytes in w.changes().iter().chain(&w.saved_docs()) {
        let framed: Vec<u8> = split_chunks(bytes).iter().flat_map(|(k, d)| chunks::frame(*k, d)).collect();
        assert_eq!(&framed, bytes, "splitting and framing again reproduces real chunks");
    }
    for bytes in w.changes() {
        let change = Change::from_bytes(bytes.clone()).expect("a real change");
        let (kind, data) = &split_chunks(&bytes)[0];
        let mut hashed = vec![*kind];
        chunks::uleb(data.len() as u64, &mut hashed);
        hashed.extend_from_slice(data);
        assert_eq!(sha256(&hashed), change.hash().0, "a change hash is the SHA-256 of its chunk");
    }
    for frame in real_frames(&w) {
        for deflate in [false, true] {
            let again = reframe(&frame_body(&frame), deflate);
            assert!(SyncRequest::decode(&again).is_ok() || SyncResponse::decode(&again).is_ok());
        }
    }
}

#[test]
fn damaged_frames_are_errors_or_round_trip() {
    let w = world();
    let frames = real_frames(&w);
    let tried = fuzz("frames", 1_500, (any::<Index>(), frame_damage()), |(which, damage)| {
        check_frame(&damage_frame(&frames[which.index(frames.len())], &damage))
    });
    assert!(tried >= 1);
}

#[test]
fn random_cbor_and_deflated_garbage_never_panic_the_decoders() {
    let input = prop_oneof![
        (cbor_value(), any::<bool>()).prop_map(|(v, d)| {
            let mut body = Vec::new();
            ciborium::into_writer(&v, &mut body).expect("encode CBOR");
            reframe(&body, d)
        }),
        proptest::collection::vec(any::<u8>(), 0..2048).prop_map(|b| reframe(&b, true)),
    ];
    fuzz("random-cbor", 1_500, input, |frame| check_frame(&frame));
}

#[test]
fn damaged_changes_parse_to_errors_or_changes_that_apply_or_fail_cleanly() {
    let w = world();
    let bases = w.changes();
    let host = Automerge::load(&w.stored("cust-1")).expect("load");
    fuzz("changes", 1_200, (any::<Index>(), damage(0)), |(which, damage)| {
        let bytes = apply_damage(&bases[which.index(bases.len())], &damage);
        keep("change", &bytes);
        let Ok(change) = Change::from_bytes(bytes.clone()) else { return Ok(()) };
        let _ =
            (change.hash(), change.actor_id(), change.seq(), change.deps(), change.message(), change.len());
        let _ = change.decode();
        for base in [Automerge::new(), host.clone()] {
            let mut doc = base;
            if doc.apply_changes([change.clone()]).is_ok() {
                check_document(&doc)?;
                // Automerge may apply a change it re-encodes differently (its hash changes): such a
                // document saves to bytes it refuses to load (upstream), counted, not failed.
                if checksum_ok(&change) && Automerge::load(&doc.save()).is_err() {
                    NOT_RELOADING.fetch_add(1, Ordering::Relaxed);
                }
            }
            // The device's path: the same bytes, loaded incrementally.
            let _ = doc.load_incremental(&bytes);
        }
        Ok(())
    });
}

#[test]
fn damaged_documents_load_and_hydrate_or_fail_cleanly() {
    let w = world();
    let bases = w.saved_docs();
    fuzz("doc-bytes", 600, (any::<Index>(), damage(0)), |(which, damage)| {
        load_and_check(&apply_damage(&bases[which.index(bases.len())], &damage)).map(|_| ())
    });
}

#[test]
fn documents_of_damaged_structure_hydrate_to_errors_or_usable_documents() {
    let w = world();
    let bases = w.saved_docs();
    fuzz("doc-structure", 500, (any::<Index>(), struct_edits()), |(which, edits)| {
        let mut doc = AutoCommit::load(&bases[which.index(bases.len())]).expect("a real document");
        apply_struct_edits(&mut doc, &edits);
        keep("doc", &doc.save());
        check_document(doc.document())
    });
}

#[test]
fn random_documents_hydrate_to_errors_or_usable_documents() {
    let kind = prop_oneof![
        4 => any::<Index>().prop_map(|i| Some(AValue::Scalar(ScalarValue::Str(DocKind::ALL[i.index(4)].as_str().into())))),
        1 => avalue().prop_map(Some),
        1 => Just(None),
    ];
    let schema = prop_oneof![4 => Just(Some(AValue::Scalar(ScalarValue::Uint(SCHEMA_VERSION)))), 1 => avalue().prop_map(Some), 1 => Just(None)];
    let fields = proptest::collection::vec((vocab_string(), avalue()), 0..24);
    fuzz("doc-random", 500, (kind, schema, fields), |(kind, schema, fields)| {
        let mut doc = AutoCommit::new();
        for (k, v) in [("kind", kind), ("schema", schema)] {
            if let Some(v) = v {
                write_value(&mut doc, &automerge::ROOT, Prop::Map(k.into()), &v, false);
            }
        }
        for (k, v) in &fields {
            write_value(&mut doc, &automerge::ROOT, Prop::Map(k.clone()), v, false);
        }
        let _ = doc.commit();
        keep("doc", &doc.save());
        check_document(doc.document())
    });
}

/// A piece of a response: which base bytes, and how they are damaged.
type Piece = (Index, Damage);

/// A rejection in a damaged response: of which id, with which code, server version and hashes.
#[derive(Debug, Clone)]
struct Rejection {
    id: Index,
    code: Index,
    server_doc: Option<Piece>,
    hashes: Vec<Vec<u8>>,
}

/// What a damaged response is made of.
#[derive(Debug, Clone)]
struct ResponseCase {
    docs: Vec<(Index, Index, Damage, DocKind)>,
    changes: Vec<(u64, Index, Index, Damage, DocKind)>,
    rejected: Vec<Rejection>,
    accepted: Vec<(Index, Vec<Vec<u8>>)>,
    revoked: Vec<Index>,
    bootstrap_after: Option<Index>,
    cursor: Cursor,
    more: bool,
}

/// Ids a response may name: alice's unsent documents first, then others.
const IDS: &[&str] = &["cust-1", "v1", "terr-1", "plan-1", "cust-2", "new-1", "zz"];
/// Ids that have no unsent edit (an acknowledgement of those is a no-op).
const IDS_NOT_PENDING: &[&str] = &["terr-1", "plan-1", "cust-2", "new-1", "zz"];
const CODES: &[&str] = &["out_of_sync", "forbidden_field", "not_found", "invalid_document", ""];

fn doc_kind() -> impl Strategy<Value = DocKind> {
    any::<Index>().prop_map(|i| DocKind::ALL[i.index(4)])
}

fn response_case() -> impl Strategy<Value = ResponseCase> {
    let hashes = proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..3);
    let cursor = prop_oneof![
        Just(Cursor::Start),
        any::<u64>().prop_map(|seq| Cursor::Feed { seq }),
        (any::<u64>(), vocab_string()).prop_map(|(head, after)| Cursor::Bootstrap { head, after }),
    ];
    (
        proptest::collection::vec((any::<Index>(), any::<Index>(), damage(2), doc_kind()), 0..3),
        proptest::collection::vec(
            (any::<u64>(), any::<Index>(), any::<Index>(), damage(2), doc_kind()),
            0..3,
        ),
        proptest::collection::vec(
            (
                any::<Index>(),
                any::<Index>(),
                proptest::option::of((any::<Index>(), damage(2))),
                hashes.clone(),
            )
                .prop_map(|(id, code, server_doc, hashes)| Rejection {
                    id,
                    code,
                    server_doc,
                    hashes,
                }),
            0..3,
        ),
        proptest::collection::vec((any::<Index>(), hashes), 0..2),
        proptest::collection::vec(any::<Index>(), 0..2),
        proptest::option::weighted(0.2, any::<Index>()),
        cursor,
        any::<bool>(),
    )
        .prop_map(|(docs, changes, rejected, accepted, revoked, bootstrap_after, cursor, more)| {
            ResponseCase { docs, changes, rejected, accepted, revoked, bootstrap_after, cursor, more }
        })
}

fn pick<'a>(from: &[&'a str], i: &Index) -> &'a str {
    from[i.index(from.len())]
}

/// Whether alice's unsent edit of `doc_id` (its changes `hashes`, the text `marker`) is still kept:
/// going out with her next push, or in her rejected list for her to see.
fn edit_kept(r: &Replica, doc_id: &str, hashes: &[automerge::ChangeHash], marker: &str) -> bool {
    let mut next = r.clone();
    let request = next.prepare_request();
    let outgoing = request.push.iter().find(|p| p.doc_id == doc_id);
    let outgoing_hashes: Vec<automerge::ChangeHash> = outgoing
        .map(|p| {
            p.changes.iter().filter_map(|c| Change::from_bytes(c.to_vec()).ok()).map(|c| c.hash()).collect()
        })
        .unwrap_or_default();
    if hashes.iter().all(|h| outgoing_hashes.contains(h)) {
        return true;
    }
    // Rebuilt on the server's version (a resync): the edit is made again, as new changes.
    let notes = |d: Document| d.notes().map(|t| t.as_str().to_string()).unwrap_or_default();
    if outgoing.is_some() && r.get(doc_id).map(notes).is_some_and(|n| n.contains(marker)) {
        return true;
    }
    r.rejected().iter().filter(|e| e.doc_id == doc_id).any(|e| {
        let kept: Vec<automerge::ChangeHash> =
            e.changes.iter().filter_map(|c| Change::from_bytes(c.to_vec()).ok()).map(|c| c.hash()).collect();
        hashes.iter().all(|h| kept.contains(h))
    })
}

#[test]
fn damaged_responses_never_lose_unsent_edits() {
    let w = world();
    let mut pieces = vec![
        w.stored("cust-1"),
        w.stored("terr-1"),
        w.stored("plan-1"),
        w.stored("cust-2"),
        Automerge::load(&w.stored("cust-1")).expect("load").save(),
        w.maria_change.clone(),
    ];
    let server_changes: Vec<u8> = Automerge::load(&w.stored("cust-1"))
        .expect("load")
        .get_changes(&[])
        .iter()
        .flat_map(|c| c.raw_bytes().to_vec())
        .collect();
    pieces.push(server_changes);
    let pending: Vec<(String, Vec<automerge::ChangeHash>)> = w
        .request
        .push
        .iter()
        .map(|p| {
            (
                p.doc_id.clone(),
                p.changes.iter().map(|c| Change::from_bytes(c.to_vec()).expect("real").hash()).collect(),
            )
        })
        .collect();
    let piece = |i: &Index, d: &Damage| {
        let bytes = apply_damage(&pieces[i.index(pieces.len())], d);
        keep("doc", &bytes);
        ByteBuf::from(bytes)
    };
    fuzz("responses", 250, response_case(), |case| {
        let resp = SyncResponse {
            accepted: case
                .accepted
                .iter()
                .map(|(id, hashes)| Accepted {
                    doc_id: pick(IDS_NOT_PENDING, id).into(),
                    hashes: hashes.iter().cloned().map(ByteBuf::from).collect(),
                })
                .collect(),
            rejected: case
                .rejected
                .iter()
                .map(|r| Rejected {
                    doc_id: pick(IDS, &r.id).into(),
                    hashes: r.hashes.iter().cloned().map(ByteBuf::from).collect(),
                    code: pick(CODES, &r.code).into(),
                    reason: "fuzz".into(),
                    server_doc: r.server_doc.as_ref().map(|(i, d)| piece(i, d)),
                })
                .collect(),
            docs: case
                .docs
                .iter()
                .map(|(id, p, d, kind)| DocSnapshot {
                    doc_id: pick(IDS, id).into(),
                    kind: *kind,
                    bytes: piece(p, d),
                })
                .collect(),
            changes: case
                .changes
                .iter()
                .map(|(seq, id, p, d, kind)| FeedChanges {
                    seq: *seq,
                    doc_id: pick(IDS, id).into(),
                    kind: *kind,
                    changes: piece(p, d),
                })
                .collect(),
            revoked: case.revoked.iter().map(|i| pick(IDS, i).to_string()).collect(),
            cursor: case.cursor.clone(),
            more: case.more,
            bootstrap_after: case.bootstrap_after.as_ref().map(|i| pick(IDS, i).to_string()),
            unavailable: case
                .revoked
                .iter()
                .skip(1)
                .map(|i| Unavailable {
                    doc_id: pick(IDS, i).into(),
                    code: "document_damaged".into(),
                    reason: "fuzz".into(),
                })
                .collect(),
        };
        let mut alice = w.alice.clone();
        let result = alice.apply_response(&resp);
        for (doc_id, hashes) in &pending {
            let marker = if doc_id == "v1" { ALICE_VISIT } else { ALICE_NOTE.trim_end() };
            prop_assert!(
                edit_kept(&alice, doc_id, hashes, marker),
                "alice's unsent edit of {doc_id} is lost (apply_response: {:?})",
                result.as_ref().map(|_| ()).map_err(|e| e.to_string())
            );
        }
        // Whatever happened, the phone still reads and prepares its next push.
        for id in IDS {
            let _ = (alice.get(id), alice.heads(id));
        }
        let _ = alice.prepare_request();
        Ok(())
    });
}

/// A change to a push.
#[derive(Debug, Clone)]
enum PushEdit {
    Damage(Index, Index, Damage),
    Drop(Index, Index),
    Duplicate(Index, Index),
    Reverse(Index),
    Move(Index, Index, Index),
    Kind(Index, DocKind),
    Rename(Index, Index),
    Foreign(Index, Index),
    /// Real changes of random structure, made on top of alice's version of the document.
    Crafted(Index, Vec<StructEdit>),
    /// A new document of random structure.
    NewDoc(Index, DocKind, Vec<StructEdit>),
}

fn push_edit() -> impl Strategy<Value = PushEdit> {
    prop_oneof![
        6 => (any::<Index>(), any::<Index>(), damage(0)).prop_map(|(d, c, x)| PushEdit::Damage(d, c, x)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(d, c)| PushEdit::Drop(d, c)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(d, c)| PushEdit::Duplicate(d, c)),
        1 => any::<Index>().prop_map(PushEdit::Reverse),
        1 => (any::<Index>(), any::<Index>(), any::<Index>()).prop_map(|(f, c, t)| PushEdit::Move(f, c, t)),
        1 => (any::<Index>(), doc_kind()).prop_map(|(d, k)| PushEdit::Kind(d, k)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(d, i)| PushEdit::Rename(d, i)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(d, i)| PushEdit::Foreign(d, i)),
        5 => (any::<Index>(), struct_edits()).prop_map(|(d, e)| PushEdit::Crafted(d, e)),
        2 => (any::<Index>(), doc_kind(), struct_edits()).prop_map(|(i, k, e)| PushEdit::NewDoc(i, k, e)),
    ]
}

fn apply_push_edit(w: &World, push: &mut Vec<DocPush>, edit: &PushEdit, foreign: &[Vec<u8>]) {
    let doc = |i: &Index, push: &[DocPush]| (!push.is_empty()).then(|| i.index(push.len()));
    match edit {
        PushEdit::Damage(d, c, x) => {
            if let Some(d) = doc(d, push)
                && !push[d].changes.is_empty()
            {
                let c = c.index(push[d].changes.len());
                let bytes = apply_damage(&push[d].changes[c], x);
                push[d].changes[c] = ByteBuf::from(bytes);
            }
        }
        PushEdit::Drop(d, c) => {
            if let Some(d) = doc(d, push)
                && !push[d].changes.is_empty()
            {
                let c = c.index(push[d].changes.len());
                push[d].changes.remove(c);
            }
        }
        PushEdit::Duplicate(d, c) => {
            if let Some(d) = doc(d, push)
                && !push[d].changes.is_empty()
            {
                let c = push[d].changes[c.index(push[d].changes.len())].clone();
                push[d].changes.push(c);
            }
        }
        PushEdit::Reverse(d) => {
            if let Some(d) = doc(d, push) {
                push[d].changes.reverse();
            }
        }
        PushEdit::Move(f, c, t) => {
            if let Some(f) = doc(f, push)
                && !push[f].changes.is_empty()
            {
                let n = push[f].changes.len();
                let c = push[f].changes.remove(c.index(n));
                let t = t.index(push.len());
                push[t].changes.push(c);
            }
        }
        PushEdit::Kind(d, k) => {
            if let Some(d) = doc(d, push) {
                push[d].kind = *k;
            }
        }
        PushEdit::Rename(d, i) => {
            if let Some(d) = doc(d, push) {
                push[d].doc_id = pick(IDS, i).into();
            }
        }
        PushEdit::Foreign(d, i) => {
            if let Some(d) = doc(d, push) {
                push[d].changes.push(ByteBuf::from(foreign[i.index(foreign.len())].clone()));
            }
        }
        PushEdit::Crafted(d, edits) => {
            if let Some(d) = doc(d, push) {
                let id = push[d].doc_id.clone();
                let Some(base) = w.alice.local(&id) else { return };
                let Ok(mut doc) = AutoCommit::load(&base.saved()) else { return };
                doc.set_actor(automerge::ActorId::from(w.alice.device_id().as_bytes()));
                let heads = doc.get_heads();
                apply_struct_edits(&mut doc, edits);
                for c in doc.get_changes(&heads) {
                    push[d].changes.push(ByteBuf::from(c.raw_bytes().to_vec()));
                }
            }
        }
        PushEdit::NewDoc(i, kind, edits) => {
            let mut doc =
                AutoCommit::new().with_actor(automerge::ActorId::from(w.alice.device_id().as_bytes()));
            let id = format!("new-{}", i.index(3));
            let _ = doc.put(automerge::ROOT, "kind", kind.as_str());
            let _ = doc.put(automerge::ROOT, "schema", SCHEMA_VERSION);
            let _ = doc.put(automerge::ROOT, "id", id.as_str());
            apply_struct_edits(&mut doc, edits);
            let changes =
                doc.get_changes(&[]).iter().map(|c| ByteBuf::from(c.raw_bytes().to_vec())).collect();
            push.push(DocPush { doc_id: id, kind: *kind, changes });
        }
    }
}

#[test]
fn damaged_pushes_get_an_answer_or_a_typed_error_and_storage_still_loads() {
    let template = world();
    let mut foreign = template.changes();
    foreign.push(template.alice.local("v1").expect("v1").saved().to_vec());
    let whos = [Role::Rep, Role::Rep, Role::Manager];
    let users = ["alice", "bob", "maria"];
    let case = (any::<Index>(), proptest::collection::vec(push_edit(), 1..4));
    fuzz("pushes", 120, case, |(who, edits)| {
        let w = world();
        let mut push = w.request.push.clone();
        for e in &edits {
            apply_push_edit(&w, &mut push, e, &foreign);
        }
        for p in &push {
            for c in &p.changes {
                keep("change", c);
            }
        }
        let i = who.index(users.len());
        let principal = fieldsync_core::Principal { team: TEAM.into(), user: users[i].into(), role: whos[i] };
        let request = alice_request(&w, push);
        match w.engine.handle(&principal, &request, 6_000) {
            Ok(resp) => {
                let again = SyncResponse::decode(&resp.encode());
                prop_assert!(again.is_ok_and(|a| a == resp), "the answer does not round-trip");
                let mut alice = w.alice.clone();
                let _ = alice.apply_response(&resp);
            }
            Err(e) => {
                let _ = (e.code(), e.to_string());
                prop_assert!(!matches!(e, SyncError::Storage(_)), "a push broke storage: {e}");
            }
        }
        check_storage(&w, 7_000)
    });
}

// --- the corrupt fixtures ---------------------------------------------------------------------------

/// Whether the engine refuses `bytes`, pushed by alice as a change to cust-1, as a corrupt change.
fn engine_refuses_change(w: &World, bytes: &[u8]) -> Result<(), String> {
    let push = vec![DocPush {
        doc_id: "cust-1".into(),
        kind: DocKind::Customer,
        changes: vec![ByteBuf::from(bytes.to_vec())],
    }];
    match w.engine.handle(w.alice.principal(), &alice_request(w, push), 6_000) {
        Err(SyncError::CorruptChange { .. }) => Ok(()),
        Err(e) => Err(format!("refused, but not as a corrupt change: {e}")),
        Ok(resp) => Err(format!("accepted: {:?} / rejected: {:?}", resp.accepted, resp.rejected)),
    }
}

/// Runs a fixture's check. Fixtures named `…-automerge-panic-…` are crashers of Automerge itself
/// (upstream, see the module docs): for those a panic inside Automerge is accepted too (unless
/// `FIELDSYNC_FUZZ_STRICT=1`), so that they turn into plain errors, checked, once it is fixed.
fn refused(name: &str, check: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    install_panic_hook();
    let strict = env_u64("FIELDSYNC_FUZZ_STRICT").is_some_and(|v| v != 0);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
        Ok(result) => result,
        Err(_) if panicked_in_automerge() && name.contains("-automerge-panic-") && !strict => Ok(()),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Every file of `tests/fixtures/corrupt/` is refused by the decoder its name starts with:
/// `frame-` by both frame decoders, `change-` by the engine as a corrupt change, `doc-` by
/// `Automerge::load` or the hydrator.
#[test]
fn corrupt_fixtures_are_refused() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/corrupt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    let w = world();
    let mut counts = [0usize; 3];
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let bytes = std::fs::read(path).expect("read fixture");
        if name.starts_with("frame-") {
            counts[0] += 1;
            assert!(SyncRequest::decode(&bytes).is_err(), "{name} decodes as a request");
            assert!(SyncResponse::decode(&bytes).is_err(), "{name} decodes as a response");
        } else if name.starts_with("change-") {
            counts[1] += 1;
            match refused(&name, || engine_refuses_change(&w, &bytes)) {
                Ok(()) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        } else if name.starts_with("doc-") {
            counts[2] += 1;
            let hydrated = refused(&name, || {
                match Automerge::load(&bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|d| Document::hydrate(&d).map_err(|e| e.to_string()))
                {
                    Ok(d) => Err(format!("loads and hydrates: {d:?}")),
                    Err(_) => Ok(()),
                }
            });
            assert!(hydrated.is_ok(), "{name}: {hydrated:?}");
        } else {
            panic!("{name}: a fixture's name says which decoder refuses it (frame-, change-, doc-)");
        }
    }
    eprintln!(
        "corrupt fixtures: {} frames, {} changes, {} documents refused",
        counts[0], counts[1], counts[2]
    );
}
