//! Per-team values computed from stored state — the report index's rows, the map's R-tree — kept
//! **by version**: the team's feed head, read *before* the state the value is built from, so a
//! value is never older than its label. A cached value is used only while the head has not moved,
//! and a value built at an older version never replaces a newer one (the invariant of
//! ARCHITECTURE.md, "never act on an older version than the stored one").
//!
//! Memory is bounded: at most `max_teams` teams are kept (the least recently built goes first),
//! and a value larger than `max_items` is built and used but not kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A value's size in items (rows, points), for the bound.
pub trait Weighed {
    fn weight(&self) -> usize;
}

/// One team's value: its version, when it was built (for eviction), the value.
#[derive(Debug)]
struct Entry<T> {
    version: u64,
    built: u64,
    value: Arc<T>,
}

#[derive(Debug)]
pub struct Versioned<T> {
    entries: Mutex<HashMap<String, Entry<T>>>,
    max_teams: usize,
    max_items: usize,
    /// Orders entries by when they were built, for eviction.
    tick: std::sync::atomic::AtomicU64,
}

impl<T: Weighed> Versioned<T> {
    pub fn new(max_teams: usize, max_items: usize) -> Self {
        Versioned {
            entries: Mutex::default(),
            max_teams: max_teams.max(1),
            max_items,
            tick: Default::default(),
        }
    }

    /// The value of `team` at `version`, built by `build` unless cached at exactly that version.
    pub fn get_or_build<E>(
        &self,
        team: &str,
        version: u64,
        build: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        if let Some(hit) = self.get(team, version) {
            return Ok(hit);
        }
        let value = Arc::new(build()?);
        self.offer(team, version, value.clone());
        Ok(value)
    }

    fn get(&self, team: &str, version: u64) -> Option<Arc<T>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(team).filter(|e| e.version == version).map(|e| e.value.clone())
    }

    /// Keeps `value` unless one of a newer version is there already, or it is too large to keep.
    fn offer(&self, team: &str, version: u64, value: Arc<T>) {
        if value.weight() > self.max_items {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.get(team).is_some_and(|e| e.version > version) {
            return;
        }
        let built = self.tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        entries.insert(team.to_string(), Entry { version, built, value });
        while entries.len() > self.max_teams {
            let oldest = entries.iter().min_by_key(|(_, e)| e.built).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => entries.remove(&k),
                None => break,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weighed for Vec<u32> {
        fn weight(&self) -> usize {
            self.len()
        }
    }

    #[test]
    fn a_value_is_used_only_at_its_version_and_never_replaced_by_an_older_one() {
        let cache: Versioned<Vec<u32>> = Versioned::new(2, 10);
        let built = |v: u32| move || Ok::<_, ()>(vec![v]);
        assert_eq!(*cache.get_or_build("t", 5, built(5)).unwrap(), vec![5]);
        // Same version: cached (the builder is not called).
        assert_eq!(*cache.get_or_build("t", 5, || Err(())).unwrap(), vec![5]);
        // A newer version builds again; an older one built late does not replace it.
        assert_eq!(*cache.get_or_build("t", 7, built(7)).unwrap(), vec![7]);
        assert_eq!(*cache.get_or_build("t", 6, built(6)).unwrap(), vec![6]);
        assert_eq!(*cache.get_or_build("t", 7, || Err(())).unwrap(), vec![7]);
        // Bounded: too large is not kept; the least recent team goes.
        let big = cache.get_or_build("big", 1, || Ok::<_, ()>(vec![0; 11])).unwrap();
        assert_eq!(big.len(), 11);
        assert!(cache.get_or_build("big", 1, || Err(())).is_err(), "not kept");
        cache.get_or_build("u", 1, built(1)).unwrap();
        cache.get_or_build("w", 1, built(2)).unwrap();
        assert!(cache.get_or_build("t", 7, || Err(())).is_err(), "t was evicted");
    }
}
