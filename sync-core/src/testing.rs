//! Test support, written once for the tests of every crate (feature `testing`, which those crates
//! enable from their dev-dependencies: it is never part of the phone library): document fixtures,
//! edits, a replica and an in-memory engine, and the loop that syncs a replica with that engine
//! until both are idle. The storage conformance suite is [`crate::storage::conformance`].

use automerge::ActorId;

use crate::client::Replica;
use crate::engine::{EngineConfig, SyncEngine, SyncError};
use crate::storage::{MemoryStorage, Storage};
use crate::{Principal, Role};

/// Documents for the stories, and edits of them.
pub mod fixtures {
    use crate::docs::*;

    pub use crate::docs::{on_customer, on_visit};

    /// Lyon, Place Bellecour.
    pub const LYON: (f64, f64) = (45.7578, 4.8320);

    /// A point `north_m` metres north and `east_m` metres east of `from`.
    pub fn offset(from: (f64, f64), north_m: f64, east_m: f64) -> (f64, f64) {
        let lat = from.0 + north_m / 111_195.0;
        let lon = from.1 + east_m / (111_195.0 * from.0.to_radians().cos());
        (lat, lon)
    }

    pub fn territory(id: &str, reps: &[&str]) -> Document {
        let reps = reps.iter().map(|r| r.to_string()).collect();
        Document::Territory(Territory::new(id, &format!("Territory {id}"), reps))
    }

    /// A territory named `name` of `reps` over the box from `south_west` to `north_east`.
    pub fn territory_over(
        id: &str,
        name: &str,
        reps: &[&str],
        south_west: (f64, f64),
        north_east: (f64, f64),
    ) -> Territory {
        let mut t = Territory::new(id, name, reps.iter().map(|r| r.to_string()).collect());
        let ((s, w), (n, e)) = (south_west, north_east);
        t.polygons = vec![
            [(s, w), (n, w), (n, e), (s, e)].iter().map(|&(lat, lon)| LatLonPoint { lat, lon }).collect(),
        ];
        t
    }

    /// A customer as the server imports it: tier B, open on Mondays, half likely to close.
    pub fn customer(id: &str, owner: &str, territory: Option<&str>, at: (f64, f64)) -> Customer {
        Customer {
            address: "1 place Bellecour, Lyon".into(),
            timezone: "Europe/Paris".into(),
            opening_hours: vec![OpeningHours { weekday: 1, open_min: 480, close_min: 1080 }],
            potential_value: 50_000.0,
            close_probability: 0.5,
            tier: Some(Tier::B),
            opportunity_stage: "qualification".into(),
            owner_rep: Some(owner.into()),
            territory: territory.map(str::to_string),
            ..Customer::new(id, &format!("Customer {id}"), GeoPoint::wgs84(at.0, at.1), "server")
        }
    }

    /// A territory of `reps` with one customer in it, in Lyon and owned by the first rep.
    pub fn territory_with_customer(territory_id: &str, reps: &[&str], customer_id: &str) -> Vec<Document> {
        let owner = reps.first().copied().unwrap_or_default();
        vec![territory(territory_id, reps), customer(customer_id, owner, Some(territory_id), LYON).into()]
    }

    /// A 45-minute visit `rep` plans at `customer`.
    pub fn visit(id: &str, customer: &str, rep: &str, start_ms: i64) -> Visit {
        Visit::planned(id, customer, rep, start_ms, start_ms + 45 * 60_000)
    }

    pub fn checkin(id: &str, at: (f64, f64), accuracy_m: f64, time_ms: i64) -> Checkin {
        Checkin::new(id, at.0, at.1, accuracy_m, time_ms)
    }

    /// An edit writing `text` at the start of the notes of a customer or a visit.
    pub fn prepend_notes(text: &str) -> impl Fn(&mut Document) + '_ {
        move |d| {
            if let Some(notes) = d.notes_mut() {
                notes.splice(0, 0, text);
            }
        }
    }

    /// An edit replacing the notes of a customer or a visit with `text` (diffed into the shared
    /// text, as the apps do).
    pub fn replace_notes(text: &str) -> impl Fn(&mut Document) + '_ {
        move |d| {
            if let Some(notes) = d.notes_mut() {
                notes.update(text);
            }
        }
    }
}

/// A replica of `user`'s device, its actor named after the device.
pub fn replica(device_id: &str, team: &str, user: &str, role: Role) -> Replica {
    let who = Principal { team: team.into(), user: user.into(), role };
    Replica::new(device_id, who, ActorId::from(device_id.as_bytes()))
}

/// An engine over a fresh [`MemoryStorage`], its configuration adjusted by `tune`.
pub fn memory_engine(tune: impl FnOnce(&mut EngineConfig)) -> SyncEngine<MemoryStorage> {
    let mut config = EngineConfig::new(ActorId::from(b"srv"));
    tune(&mut config);
    SyncEngine::new(MemoryStorage::in_memory(), config)
}

/// What [`sync_until_idle_with`] does when the engine refuses a request for an invalid document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInvalid {
    /// The test fails.
    Fail,
    /// The edit is set aside (as the device library does) and the sync goes on.
    SetAside,
}

/// Syncs `replica` with `engine` at `now_ms` until the engine has nothing more and the outbox is
/// empty; returns the number of rounds. Any error fails the test.
pub fn sync_until_idle<S: Storage>(engine: &SyncEngine<S>, replica: &mut Replica, now_ms: i64) -> usize {
    sync_until_idle_with(engine, replica, now_ms, OnInvalid::Fail, |_| {})
}

/// [`sync_until_idle`], calling `step` after every change to the replica (a request prepared, a
/// response applied, an edit set aside): a device store persists there, a test checks an
/// invariant. Fails the test on any other error, or when 100 rounds do not finish.
pub fn sync_until_idle_with<S: Storage>(
    engine: &SyncEngine<S>,
    replica: &mut Replica,
    now_ms: i64,
    on_invalid: OnInvalid,
    mut step: impl FnMut(&mut Replica),
) -> usize {
    for round in 1..=100 {
        let request = replica.prepare_request();
        step(replica);
        match engine.handle(&replica.principal().clone(), &request, now_ms) {
            Ok(response) => {
                let report = replica.apply_response(&response).expect("apply the response");
                step(replica);
                if !report.more && replica.outbox_len() == 0 {
                    return round;
                }
            }
            Err(SyncError::InvalidDocument { doc_id, .. }) if on_invalid == OnInvalid::SetAside => {
                replica.set_aside(&doc_id, "invalid_document", "refused").expect("set aside");
                step(replica);
            }
            Err(e) => panic!("sync refused: {e}"),
        }
    }
    panic!("sync does not finish in 100 rounds");
}

/// Storage faults at random, for the tests that prove a failed write costs nothing: a
/// [`KvBackend`](crate::storage::KvBackend) that fails some of its batches, seeded.
pub mod faults {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

    use crate::storage::{KvBackend, KvOp, Result, StorageError};

    /// How a batch fails.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Fault {
        /// Nothing is written and the batch fails: a disk full ([`StorageError::Full`]) or an I/O
        /// error before the write.
        Refused,
        /// The batch is written, then fails: the flush's answer was lost. Not acknowledged, yet
        /// durable — a retry must find it and take it once.
        AfterWrite,
    }

    /// The dial shared between a test and its [`FaultyKv`]: the share of batches that fail, the
    /// seeded generator that picks them, and what was injected.
    #[derive(Debug)]
    pub struct Faults {
        per_mille: AtomicU32,
        rng: Mutex<u64>,
        /// Batches seen while faults were on, and faults of each kind injected.
        pub batches: AtomicUsize,
        pub refused: AtomicUsize,
        pub full: AtomicUsize,
        pub after_write: AtomicUsize,
    }

    impl Faults {
        /// Off until [`Faults::fail`] is called; `seed` fixes which batches fail.
        pub fn new(seed: u64) -> Self {
            Faults {
                per_mille: AtomicU32::new(0),
                rng: Mutex::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
                batches: AtomicUsize::new(0),
                refused: AtomicUsize::new(0),
                full: AtomicUsize::new(0),
                after_write: AtomicUsize::new(0),
            }
        }

        /// From now on, `per_mille` of the batches fail (0 turns faults off).
        pub fn fail(&self, per_mille: u32) {
            self.per_mille.store(per_mille.min(1000), Ordering::SeqCst);
        }

        pub fn injected(&self) -> usize {
            self.refused.load(Ordering::SeqCst)
                + self.full.load(Ordering::SeqCst)
                + self.after_write.load(Ordering::SeqCst)
        }

        fn next(&self) -> u64 {
            let mut x = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            *x
        }

        /// Whether and how the next batch fails.
        fn pick(&self) -> Option<Fault> {
            let per_mille = self.per_mille.load(Ordering::SeqCst);
            if per_mille == 0 {
                return None;
            }
            self.batches.fetch_add(1, Ordering::SeqCst);
            let r = self.next();
            if r % 1000 >= u64::from(per_mille) {
                return None;
            }
            Some(if (r >> 32).is_multiple_of(2) { Fault::Refused } else { Fault::AfterWrite })
        }
    }

    /// `inner` with some of its batches failing, as [`Faults`] says. Reads always work.
    #[derive(Debug)]
    pub struct FaultyKv<B> {
        inner: B,
        faults: std::sync::Arc<Faults>,
    }

    impl<B> FaultyKv<B> {
        pub fn new(inner: B, faults: std::sync::Arc<Faults>) -> Self {
            FaultyKv { inner, faults }
        }
    }

    impl<B: KvBackend> KvBackend for FaultyKv<B> {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.inner.get(key)
        }

        fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            self.inner.scan(start, end, limit)
        }

        fn export(&self, each: &mut crate::storage::ExportSink<'_>) -> Result<()> {
            self.inner.export(each)
        }

        fn apply(&self, ops: Vec<KvOp>) -> Result<()> {
            match self.faults.pick() {
                None => self.inner.apply(ops),
                Some(Fault::Refused) if self.faults.next().is_multiple_of(2) => {
                    self.faults.full.fetch_add(1, Ordering::SeqCst);
                    Err(StorageError::Full("injected: no space left on device".into()))
                }
                Some(Fault::Refused) => {
                    self.faults.refused.fetch_add(1, Ordering::SeqCst);
                    Err(StorageError::Backend("injected: I/O error before the write".into()))
                }
                Some(Fault::AfterWrite) => {
                    self.inner.apply(ops)?;
                    self.faults.after_write.fetch_add(1, Ordering::SeqCst);
                    Err(StorageError::Backend("injected: I/O error in the flush after the write".into()))
                }
            }
        }

        fn size_on_disk(&self) -> u64 {
            self.inner.size_on_disk()
        }
    }
}
