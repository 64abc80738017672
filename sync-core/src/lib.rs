//! # fieldsync-core
//!
//! The sans-IO heart of fieldsync, the offline-first sync backend for field sales teams. It holds
//! everything that decides what is true, and nothing that does IO:
//!
//! - [`docs`]: typed Automerge documents (`customer`, `visit`, `territory`, `plan`), each with its kind
//!   and schema version;
//! - [`protocol`]: the one-round-trip change-feed sync protocol as versioned binary messages;
//! - [`engine`]: the server side of that protocol over a [`storage::Storage`];
//! - [`client`]: the device side, a [`client::Replica`] that prepares requests and applies responses;
//! - [`device`]: what a rep does on the phone, as operations on a `Replica` (plan, check in, notes…);
//! - [`rules`]: who may change what, decided by comparing a document before and after;
//! - [`geo`]: check-in verification as a pure function (time passed in);
//! - [`checkin`]: the check-in policy both sides apply: neighbours in the rep's trail, verdict, and
//!   whether a fix may become a reference;
//! - [`storage`]: the storage interface, an in-memory implementation and its conformance suite;
//! - `testing` (feature `testing`, for the workspace's tests only): fixtures, an in-memory engine
//!   and a sync loop, and the storage conformance suite.
//!
//! The server (`fieldsync-server`) and the device library (`fieldsync-mobile`) each own a small loop
//! around these that performs the IO.
//!
//! Planning (tiers, visit cadence, day and week routes, territories) is a crate of its own,
//! `fieldsync-planning`, over these documents and [`geo`]: the sync path does not build it, and the
//! server and the device library depend on it explicitly.
//!
//! ```
//! use fieldsync_core::{client::Replica, engine::{EngineConfig, SyncEngine}, storage::MemoryStorage};
//! use fieldsync_core::{Principal, Role, docs::*};
//! use automerge::ActorId;
//!
//! let server = SyncEngine::new(MemoryStorage::in_memory(), EngineConfig::new(ActorId::from(b"server")));
//! let alice = Principal { team: "acme".into(), user: "alice".into(), role: Role::Rep };
//! let mut phone = Replica::new("phone-1", alice.clone(), ActorId::from(b"phone-1"));
//!
//! // Offline: plan a visit.
//! let visit = Visit::planned("visit-1", "cust-1", "alice", 0, 3_600_000);
//! phone.create(Document::Visit(Visit { notes: "bring samples".into(), ..visit }), 0).unwrap();
//!
//! // Online: one round trip.
//! let request = phone.prepare_request();
//! let response = server.handle(&alice, &request, 1_000).unwrap();
//! phone.apply_response(&response).unwrap();
//! assert_eq!(phone.outbox_len(), 0);
//! assert!(server.read_doc("acme", "visit-1").unwrap().is_some());
//! ```

pub mod checkin;
pub mod chunks;
pub mod client;
pub mod device;
pub mod docs;
pub mod engine;
pub mod figures;
pub mod geo;
pub mod index;
pub mod protocol;
pub mod rules;
pub mod storage;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod untrusted;

pub use rules::{Principal, Role};

#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!();
