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
