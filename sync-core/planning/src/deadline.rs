//! When a search must stop early, decided by the caller: the planning never reads a clock.
//!
//! Every search runs for an iteration budget, a pure function of its input and seed. A request's
//! `time_limit_ms` asks for a wall-clock cap on top; the *caller* (the server's handler, the device
//! library, an example) turns it into a [`Deadline`] over a monotonic clock it owns and passes it to
//! the `*_until` form of a function ([`route::plan_day_until`](crate::route::plan_day_until),
//! [`agenda::plan_rep_day_until`](crate::agenda::plan_rep_day_until), …). The plain forms
//! (`plan_day`, `plan_rep_day`, …) take no deadline: they validate `time_limit_ms` but stop on
//! iterations alone, so the same request and seed give the same answer everywhere.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use fieldsync_planning::Deadline;
//!
//! let origin = Instant::now();
//! let clock = move || origin.elapsed();
//! assert!(Deadline::after_ms(&clock, 0).is_none()); // 0 = no cap
//! let d = Deadline::after_ms(&clock, 500).expect("a cap");
//! assert!(!d.passed());
//! assert!(Deadline::new(&clock, Duration::ZERO).passed());
//! ```

use std::fmt;
use std::time::Duration;

/// A point on a caller-supplied monotonic clock (time since any fixed origin) after which a search
/// stops with the best it has.
#[derive(Clone, Copy)]
pub struct Deadline<'a> {
    now: &'a dyn Fn() -> Duration,
    at: Duration,
}

impl fmt::Debug for Deadline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline").field("at", &self.at).finish_non_exhaustive()
    }
}

impl<'a> Deadline<'a> {
    /// Stop once `now()` reaches `at`.
    pub fn new(now: &'a dyn Fn() -> Duration, at: Duration) -> Deadline<'a> {
        Deadline { now, at }
    }

    /// `limit_ms` from now on `now`'s clock; `None` for 0, which means "no cap" in every request's
    /// `time_limit_ms`.
    pub fn after_ms(now: &'a dyn Fn() -> Duration, limit_ms: u64) -> Option<Deadline<'a>> {
        (limit_ms > 0).then(|| Deadline { now, at: now().saturating_add(Duration::from_millis(limit_ms)) })
    }

    /// The clock's reading now.
    pub fn now(&self) -> Duration {
        (self.now)()
    }

    /// The deadline's point on the clock.
    pub fn at(&self) -> Duration {
        self.at
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        self.now() >= self.at
    }
}
