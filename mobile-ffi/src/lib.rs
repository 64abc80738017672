//! # fieldsync-mobile
//!
//! The device library behind the rep's and the manager's app. It will wrap
//! [`fieldsync_core::client::Replica`] with a crash-safe local store, an HTTP transport and UniFFI
//! bindings (Kotlin, Swift, Python). Until then it re-exports the core's device side so that apps and
//! tests build against one name.
//!
//! ```
//! use fieldsync_mobile::{Principal, Replica, Role};
//! let who = Principal { team: "acme".into(), user: "alice".into(), role: Role::Rep };
//! let replica = Replica::new("phone-1", who, automerge_actor(b"phone-1"));
//! assert_eq!(replica.outbox_len(), 0);
//! # fn automerge_actor(b: &[u8]) -> fieldsync_mobile::ActorId { fieldsync_mobile::ActorId::from(b) }
//! ```

pub use fieldsync_core::client::{ApplyReport, RejectedEdit, Replica};
pub use fieldsync_core::{Principal, Role};

/// The Automerge actor type devices are created with.
pub type ActorId = automerge::ActorId;
