//! Bytes from outside handed to Automerge.
//!
//! Automerge 0.12 panics on some damaged changes and documents instead of returning an error
//! (`tests/fuzz.rs` finds them; `tests/fixtures/corrupt/` keeps them). A panic there must never take
//! down the request of the rep who sent them, let alone the others': every place that gives
//! Automerge bytes it did not produce itself, on a copy it can throw away, goes through [`guard`].

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`, turning a panic into `Err` with its message. `f` must work only on values it owns or
/// that are dropped when it fails (a fork of a document, a fresh load): what a panic interrupted
/// is never seen again, which is why asserting unwind safety is sound here.
pub(crate) fn guard<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        tracing::warn!(panic = %message, "automerge panicked on outside bytes; refused");
        message
    })
}

/// `Automerge::load` of bytes from outside: a damaged document is an error, whatever Automerge does.
pub(crate) fn load(bytes: &[u8]) -> Result<automerge::Automerge, String> {
    guard(|| automerge::Automerge::load(bytes)).and_then(|loaded| loaded.map_err(|e| e.to_string()))
}
