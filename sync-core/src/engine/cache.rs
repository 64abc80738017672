//! Loaded documents kept between requests, each with the version it was loaded at.
//!
//! The invariant the engine relies on: **no one ever acts on an older version of a document than
//! the stored one.** The cache serves it in three ways:
//!
//! - an entry is a shared, immutable [`Snapshot`]: readers take a reference and never remove or put
//!   back what they read, so a slow reader cannot replace a newer copy with its older one;
//! - an entry is only ever replaced by a snapshot of the same or a newer version
//!   ([`DocCache::offer`]);
//! - writers do not trust the cache: [`crate::engine::SyncEngine`] compares an entry's version with
//!   the stored [`DocMeta::updated_seq`] before using it, and commits only when the version it
//!   staged against is still the stored one.
//!
//! A snapshot's version is the `updated_seq` read *before* its bytes, so its content is never older
//! than its label: a mislabelled entry can only cause a reload, never a stale write.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use automerge::Automerge;

#[cfg(doc)]
use crate::storage::DocMeta;

/// A document as stored at one version (the [`DocMeta::updated_seq`] it was loaded or written at).
#[derive(Debug)]
pub struct Snapshot {
    pub doc: Automerge,
    pub version: u64,
}

impl Snapshot {
    pub fn version(&self) -> u64 {
        self.version
    }
}

type Key = (String, String);

/// How well the cache serves: lookups of a document at its stored version that found it loaded
/// (hits) or had to load it from storage (misses), since the engine started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Documents loaded now.
    pub loaded: usize,
}

/// A bounded LRU of snapshots, keyed by team and document.
pub(crate) struct DocCache {
    lru: Mutex<lru::LruCache<Key, Arc<Snapshot>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl DocCache {
    pub(crate) fn new(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        DocCache {
            lru: Mutex::new(lru::LruCache::new(cap)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, lru::LruCache<Key, Arc<Snapshot>>> {
        self.lru.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached snapshot, if any (it stays cached).
    pub(crate) fn get(&self, team: &str, doc_id: &str) -> Option<Arc<Snapshot>> {
        self.lock().get(&(team.to_string(), doc_id.to_string())).cloned()
    }

    /// The cached snapshot when it is at `version` (the stored one), counted as a hit or a miss.
    pub(crate) fn at_version(&self, team: &str, doc_id: &str, version: u64) -> Option<Arc<Snapshot>> {
        let found = self.get(team, doc_id).filter(|snap| snap.version() == version);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            loaded: self.len(),
        }
    }

    /// Caches `snapshot` unless a newer version is cached already.
    pub(crate) fn offer(&self, team: &str, doc_id: &str, snapshot: Arc<Snapshot>) {
        let mut lru = self.lock();
        let key = (team.to_string(), doc_id.to_string());
        if lru.peek(&key).is_some_and(|cached| cached.version() > snapshot.version()) {
            return;
        }
        lru.put(key, snapshot);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(version: u64) -> Arc<Snapshot> {
        Arc::new(Snapshot { doc: Automerge::new(), version })
    }

    #[test]
    fn an_older_snapshot_never_replaces_a_newer_one() {
        let cache = DocCache::new(4);
        cache.offer("t", "d", snap(5));
        cache.offer("t", "d", snap(3));
        assert_eq!(cache.get("t", "d").map(|s| s.version()), Some(5));
        cache.offer("t", "d", snap(7));
        assert_eq!(cache.get("t", "d").map(|s| s.version()), Some(7));
    }

    #[test]
    fn a_lookup_at_the_stored_version_counts_a_hit_and_any_other_a_miss() {
        let cache = DocCache::new(4);
        assert!(cache.at_version("t", "d", 1).is_none());
        cache.offer("t", "d", snap(2));
        assert!(cache.at_version("t", "d", 1).is_none(), "an older stored version is not served");
        assert!(cache.at_version("t", "d", 2).is_some());
        assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 2, loaded: 1 });
    }

    #[test]
    fn reading_keeps_the_entry() {
        let cache = DocCache::new(4);
        cache.offer("t", "d", snap(1));
        assert!(cache.get("t", "d").is_some());
        assert!(cache.get("t", "d").is_some());
        assert_eq!(cache.len(), 1);
    }
}
