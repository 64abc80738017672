//! The device's crash-safe local store: sled with a small cache.
//!
//! Every write the app sees return has been applied as one atomic sled batch and flushed, so it
//! survives a `kill -9` right after. Documents are kept as Automerge chunks (incremental changes,
//! compacted into one saved document now and then), next to what the server is known to hold of them
//! and what the replica needs to hold them without loading them (heads, whether anything is unsent):
//! opening a store does not load its documents.
//!
//! | key | value |
//! |---|---|
//! | `meta/device` | device id |
//! | `meta/principal` | team, user and role the store belongs to |
//! | `meta/cursor` | feed cursor |
//! | `meta/actor_epoch` | how many times the replica took a new actor (after a resync) |
//! | `meta/rejected` | kept rejected edits |
//! | `meta/last_sync_ms` | time of the last successful sync |
//! | `d/{doc}` | kind, acknowledged heads, chunk count, heads, whether anything is unsent |
//! | `c/{doc}/{n:08}` | chunk n |

use std::path::Path;

use automerge::{Automerge, ChangeHash};
use fieldsync_core::Principal;
use fieldsync_core::client::{LocalDoc, RejectedEdit, Replica};
use fieldsync_core::docs::DocKind;
use fieldsync_core::protocol::Cursor;
use fieldsync_core::storage::cbor;
use serde::{Deserialize, Serialize};

/// Errors of the local store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("local store: {0}")]
    Backend(#[from] sled::Error),
    #[error("local store is corrupt: {0}")]
    Corrupt(String),
    /// Nothing was written: the phone's storage is (nearly) full.
    #[error("the phone's storage is full: {0}; free some space and the edits are saved")]
    Full(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// After this many chunks a document is saved whole again.
pub const COMPACT_AFTER: u32 = 16;

#[derive(Debug, Serialize, Deserialize)]
struct DocEntry {
    kind: DocKind,
    acked: Vec<serde_bytes::ByteBuf>,
    chunks: u32,
    /// Heads covered by the stored chunks: the document's heads.
    saved: Vec<serde_bytes::ByteBuf>,
    /// Whether the document holds changes that are not ancestors of `acked` (absent in entries
    /// written before it was recorded).
    #[serde(default)]
    pending: Option<bool>,
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    cbor::encode(v).map_err(StoreError::Corrupt)
}

fn dec<T: serde::de::DeserializeOwned>(what: &str, b: &[u8]) -> Result<T> {
    cbor::decode(what, b).map_err(StoreError::Corrupt)
}

fn hashes(v: &[ChangeHash]) -> Vec<serde_bytes::ByteBuf> {
    v.iter().map(|h| serde_bytes::ByteBuf::from(h.0.to_vec())).collect()
}

fn unhash(v: &[serde_bytes::ByteBuf]) -> Result<Vec<ChangeHash>> {
    v.iter()
        .map(|b| ChangeHash::try_from(b.as_slice()).map_err(|e| StoreError::Corrupt(format!("hash: {e}"))))
        .collect()
}

/// Everything a replica needs to come back after a restart.
#[derive(Debug)]
pub struct Loaded {
    pub device_id: Option<String>,
    pub principal: Option<Principal>,
    pub cursor: Cursor,
    pub actor_epoch: u32,
    pub docs: Vec<(String, LocalDoc)>,
    pub rejected: Vec<RejectedEdit>,
    pub last_sync_ms: Option<i64>,
    /// Documents whose local copy was damaged and salvaged (see [`DeviceStore::load`]).
    pub repaired: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DeviceStore {
    db: sled::Db,
    /// The directory whose filesystem's free space is checked before each batch.
    dir: std::path::PathBuf,
    min_free_bytes: u64,
}

/// Free space a store never writes into: the phone's own system needs it, and sled, once it has
/// met `ENOSPC`, fails every later write until the store is reopened (seen on a full filesystem).
/// So a batch that could eat into it is refused before sled sees it.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 8 * 1024 * 1024;

/// What a batch may cost on disk per byte of keys and values (sled's log, then its pages).
const DISK_BYTES_PER_BATCH_BYTE: u64 = 3;

/// A sled batch and how many bytes of keys and values it writes.
#[derive(Default)]
struct Writes {
    batch: sled::Batch,
    bytes: u64,
}

impl Writes {
    fn insert(&mut self, key: impl AsRef<[u8]>, value: impl Into<Vec<u8>>) {
        let (key, value) = (key.as_ref(), value.into());
        self.bytes += (key.len() + value.len()) as u64;
        self.batch.insert(key, value);
    }

    fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.bytes += key.as_ref().len() as u64;
        self.batch.remove(key.as_ref());
    }
}

impl DeviceStore {
    /// Opens the store in `dir` with a small page cache (phones are short of memory).
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with_reserve(dir, DEFAULT_MIN_FREE_BYTES)
    }

    /// Like [`DeviceStore::open`], never writing into the last `min_free_bytes` of the filesystem.
    pub fn open_with_reserve(dir: &Path, min_free_bytes: u64) -> Result<Self> {
        let config = sled::Config::new().path(dir).cache_capacity(2 * 1024 * 1024).mode(sled::Mode::LowSpace);
        // A store just closed in this process (the app dropped its client and opens a new one) is
        // released by sled's background threads a moment after: wait for its lock a little.
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(e) if attempts < 50 && e.to_string().contains("could not acquire lock") => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(DeviceStore { db, dir: dir.to_path_buf(), min_free_bytes })
    }

    /// Refuses a batch of `bytes` that could take the filesystem below the reserve.
    fn check_space(&self, bytes: u64) -> Result<()> {
        if self.min_free_bytes == 0 {
            return Ok(());
        }
        let st = rustix::fs::statvfs(&self.dir).map_err(|e| StoreError::Full(format!("free space: {e}")))?;
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let needed = bytes.saturating_mul(DISK_BYTES_PER_BATCH_BYTE).saturating_add(self.min_free_bytes);
        if free < needed {
            return Err(StoreError::Full(format!(
                "{free} bytes free; this write needs {needed} with the {} kept free",
                self.min_free_bytes
            )));
        }
        Ok(())
    }

    fn get_meta<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>> {
        self.db.get(key)?.map(|v| dec(key, &v)).transpose()
    }

    /// Reads everything back. Documents stay saved bytes, not loaded (entries written before the
    /// store recorded whether a document has unsent changes are loaded once and upgraded).
    ///
    /// A damaged document costs only itself: a chunk that no longer matches its checksum, an entry
    /// that no longer decodes or bytes that no longer load are salvaged — what still loads is
    /// kept and saved whole again, the rest dropped — the cursor goes back to the start so the next
    /// sync fetches the server's copies, and the document is named in [`Loaded::repaired`]. The
    /// other documents open as they are.
    pub fn load(&self) -> Result<Loaded> {
        let mut docs = Vec::new();
        let mut repaired = Vec::new();
        let mut upgrade = Writes::default();
        for item in self.db.scan_prefix(b"d/") {
            let (k, v) = item?;
            let id = String::from_utf8(k[2..].to_vec()).map_err(|_| StoreError::Corrupt("doc id".into()))?;
            let mut values = Vec::new();
            for chunk in self.db.scan_prefix(format!("c/{id}/").as_bytes()) {
                values.push(chunk?);
            }
            let entry: Option<DocEntry> = dec("doc entry", &v).ok();
            let intact = values.iter().all(|(_, v)| fieldsync_core::chunks::verify(v).is_ok());
            let read = match entry {
                Some(entry) if intact => Self::read_doc(&id, entry, &values, &mut upgrade),
                _ => None,
            };
            match read {
                Some(local) => docs.push((id, local)),
                None => {
                    tracing::warn!(doc = %id, "a damaged local copy: salvaged, and fetched again at the next sync");
                    if let Some(local) = Self::salvage(&id, dec("doc entry", &v).ok(), &values, &mut upgrade)?
                    {
                        docs.push((id.clone(), local));
                    }
                    repaired.push(id);
                }
            }
        }
        let mut cursor = self.get_meta("meta/cursor")?.unwrap_or(Cursor::Start);
        if !repaired.is_empty() {
            cursor = Cursor::Start;
            upgrade.insert("meta/cursor", enc(&cursor)?);
        }
        if upgrade.bytes > 0 {
            self.commit(upgrade)?;
        }
        Ok(Loaded {
            device_id: self.get_meta("meta/device")?,
            principal: self.get_meta("meta/principal")?,
            cursor,
            actor_epoch: self.get_meta("meta/actor_epoch")?.unwrap_or(0),
            docs,
            rejected: self.get_meta("meta/rejected")?.unwrap_or_default(),
            last_sync_ms: self.get_meta("meta/last_sync_ms")?,
            repaired,
        })
    }

    /// An intact document as its entry describes it (`None`: it does not load after all).
    fn read_doc(
        id: &str,
        mut entry: DocEntry,
        values: &[(sled::IVec, sled::IVec)],
        upgrade: &mut Writes,
    ) -> Option<LocalDoc> {
        let bytes: Vec<u8> = values.iter().flat_map(|(_, v)| v.iter().copied()).collect();
        let acked = unhash(&entry.acked).ok()?;
        let (heads, pending) = match entry.pending {
            Some(pending) => (unhash(&entry.saved).ok()?, pending),
            None => {
                let doc = Automerge::load(&bytes).ok()?;
                let heads = doc.get_heads();
                let pending = !doc.get_changes(&acked).is_empty();
                entry.saved = hashes(&heads);
                entry.pending = Some(pending);
                upgrade.insert(format!("d/{id}"), enc(&entry).ok()?);
                (heads, pending)
            }
        };
        Some(LocalDoc::from_saved(bytes, entry.kind, acked, heads, pending))
    }

    /// What still loads of a damaged document, saved whole again (`None`: nothing did, and the
    /// document is removed from the store). Acknowledged heads that were lost are forgotten: the
    /// changes they covered are sent again, which the server ignores for those it holds.
    fn salvage(
        id: &str,
        entry: Option<DocEntry>,
        values: &[(sled::IVec, sled::IVec)],
        upgrade: &mut Writes,
    ) -> Result<Option<LocalDoc>> {
        let mut doc = Automerge::new();
        for (_, v) in values.iter().filter(|(_, v)| fieldsync_core::chunks::verify(v).is_ok()) {
            // Changes whose dependencies were in a damaged chunk wait in the queue and are not saved.
            let _ = doc.load_incremental(v);
        }
        for (key, _) in values {
            upgrade.remove(key);
        }
        let kind = entry.as_ref().map(|e| e.kind).or_else(|| fieldsync_core::docs::kind_of(&doc));
        let (Some(kind), false) = (kind, doc.get_heads().is_empty()) else {
            upgrade.remove(format!("d/{id}"));
            return Ok(None);
        };
        let acked: Vec<ChangeHash> = entry
            .and_then(|e| unhash(&e.acked).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|h| doc.get_change_meta_by_hash(h).is_some())
            .collect();
        let local = LocalDoc::new(doc, kind, acked);
        let saved = local.saved().into_owned();
        upgrade.insert(format!("c/{id}/{:08}", 0), saved);
        let entry = DocEntry {
            kind,
            acked: hashes(local.acked()),
            chunks: 1,
            saved: hashes(local.heads()),
            pending: Some(local.has_pending()),
        };
        upgrade.insert(format!("d/{id}"), enc(&entry)?);
        Ok(Some(local))
    }

    pub fn set_identity(&self, device_id: &str, principal: &Principal) -> Result<()> {
        let mut b = Writes::default();
        b.insert("meta/device", enc(&device_id)?);
        b.insert("meta/principal", enc(principal)?);
        self.commit(b)
    }

    fn commit(&self, writes: Writes) -> Result<()> {
        self.check_space(writes.bytes)?;
        self.db.apply_batch(writes.batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Persists the given documents (as they are in `lookup`; absent = removed), the cursor, the
    /// rejected list and the sync time, in one durable batch.
    pub fn persist(
        &self,
        replica: &Replica,
        ids: impl IntoIterator<Item = String>,
        last_sync_ms: Option<i64>,
    ) -> Result<()> {
        let mut b = Writes::default();
        for id in ids {
            let key = format!("d/{id}");
            let old: Option<DocEntry> = self.db.get(&key)?.map(|v| dec("doc entry", &v)).transpose()?;
            match replica.local(&id) {
                None => {
                    b.remove(key.as_bytes());
                    for chunk in self.db.scan_prefix(format!("c/{id}/").as_bytes()).keys() {
                        b.remove(chunk?);
                    }
                }
                Some(local) => {
                    let heads = local.heads().to_vec();
                    // Only the new changes when the stored copy is an ancestor of the document and
                    // the document is loaded; otherwise it is written whole.
                    let stored = match &old {
                        Some(o) if o.chunks < COMPACT_AFTER => Some((o.chunks, unhash(&o.saved)?)),
                        _ => None,
                    };
                    let delta = match &stored {
                        Some((_, saved)) if *saved == heads => Some(vec![]),
                        Some((_, saved)) => local.save_after(saved),
                        None => None,
                    };
                    let chunks = match (stored, delta) {
                        (Some((chunks, _)), Some(delta)) if delta.is_empty() => chunks,
                        (Some((chunks, _)), Some(delta)) => {
                            b.insert(format!("c/{id}/{chunks:08}").as_bytes(), delta);
                            chunks + 1
                        }
                        _ => {
                            for chunk in self.db.scan_prefix(format!("c/{id}/").as_bytes()).keys() {
                                b.remove(chunk?);
                            }
                            b.insert(format!("c/{id}/{:08}", 0).as_bytes(), local.saved().into_owned());
                            1
                        }
                    };
                    let entry = DocEntry {
                        kind: local.kind(),
                        acked: hashes(local.acked()),
                        chunks,
                        saved: hashes(&heads),
                        pending: Some(local.has_pending()),
                    };
                    b.insert(key.as_bytes(), enc(&entry)?);
                }
            }
        }
        b.insert("meta/cursor", enc(replica.cursor())?);
        b.insert("meta/actor_epoch", enc(&replica.actor_epoch())?);
        b.insert("meta/rejected", enc(&replica.rejected())?);
        if let Some(t) = last_sync_ms {
            b.insert("meta/last_sync_ms", enc(&t)?);
        }
        self.commit(b)
    }

    /// Persists what changed in `replica` since the last persist (see [`DeviceStore::persist`]).
    /// When that fails (a full disk), the documents stay marked as changed: the next persist that
    /// succeeds writes them, so an edit the app was told failed to save is kept in memory and
    /// saved then, and no later write can store a cursor ahead of them.
    pub fn persist_changed(&self, replica: &mut Replica, last_sync_ms: Option<i64>) -> Result<()> {
        let dirty = replica.take_dirty();
        if dirty.is_empty() && last_sync_ms.is_none() {
            return Ok(());
        }
        self.persist(replica, dirty.iter().cloned(), last_sync_ms)
            .inspect_err(|_| replica.untake_dirty(dirty))
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// How many chunks hold document `id` now (at most [`COMPACT_AFTER`]: a diagnostic, and what
    /// tests check compaction by).
    pub fn chunks_of(&self, id: &str) -> Result<u32> {
        let mut n = 0;
        for key in self.db.scan_prefix(format!("c/{id}/").as_bytes()).keys() {
            key?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ActorId;
    use fieldsync_core::docs::{Document, Visit};
    use fieldsync_core::engine::SyncEngine;
    use fieldsync_core::storage::MemoryStorage;
    use fieldsync_core::testing::fixtures::{self, checkin, prepend_notes};
    use fieldsync_core::testing::{OnInvalid, memory_engine, replica, sync_until_idle_with};
    use fieldsync_core::{Principal, Role};

    const TEAM: &str = "t";

    fn alice() -> Principal {
        Principal { team: TEAM.into(), user: "alice".into(), role: Role::Rep }
    }

    fn engine(customers: usize) -> SyncEngine<MemoryStorage> {
        let engine = memory_engine(|c| c.bootstrap_docs = 7);
        let docs: Vec<Document> = (0..customers)
            .map(|i| Document::Customer(fixtures::customer(&format!("c{i:02}"), "alice", None, (45.0, 4.0))))
            .collect();
        engine.write_as_server(TEAM, &docs, 0).expect("seed");
        engine
    }

    /// A device store in a temporary directory (gone with the directory), a server holding
    /// `customers` of alice's, and alice's replica, not synced yet.
    fn setup(customers: usize) -> (tempfile::TempDir, DeviceStore, SyncEngine<MemoryStorage>, Replica) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DeviceStore::open(dir.path()).expect("open");
        (dir, store, engine(customers), replica("pa", TEAM, "alice", Role::Rep))
    }

    fn save(store: &DeviceStore, r: &mut Replica) {
        store.persist_changed(r, None).expect("persist");
    }

    /// Syncs the way the device library does: every step persisted, an invalid edit set aside.
    fn sync(engine: &SyncEngine<MemoryStorage>, store: &DeviceStore, r: &mut Replica, now: i64) {
        sync_until_idle_with(engine, r, now, OnInvalid::SetAside, |r| save(store, r));
    }

    fn reopen(store: &DeviceStore) -> Replica {
        let loaded = store.load().expect("load");
        let mut r = Replica::restore(
            "pa",
            alice(),
            ActorId::from(b"pa"),
            loaded.cursor,
            loaded.docs,
            loaded.rejected,
        );
        r.set_actor_epoch(loaded.actor_epoch);
        r.set_resident_limit(4);
        r
    }

    type View = Vec<(String, Option<Vec<ChangeHash>>, Option<Document>, bool)>;

    fn view(r: &Replica) -> View {
        r.doc_ids()
            .map(|id| {
                let pending = r.local(id).is_some_and(|d| d.has_pending());
                (id.clone(), r.heads(id), r.get(id), pending)
            })
            .collect()
    }

    fn notes(r: &mut Replica, id: &str, text: &str, now: i64) {
        r.update(id, now, prepend_notes(text)).expect("edit");
    }

    #[test]
    fn an_entry_that_no_longer_decodes_is_rebuilt_from_its_chunks_and_the_cursor_starts_over() {
        // 1. Alice's replica synced, one note unsent on c01.
        let (_dir, store, engine, mut r) = setup(3);
        sync(&engine, &store, &mut r, 1);
        notes(&mut r, "c01", "unsent. ", 2);
        save(&store, &mut r);
        let before = view(&r);
        assert!(!matches!(r.cursor(), Cursor::Start));

        // 2. c01's entry is damaged; its chunks are intact.
        store.db.insert("d/c01", &b"\xff\x00 not cbor"[..]).expect("damage");
        store.db.flush().expect("flush");

        // 3. It opens: c01 is rebuilt from its chunks (kind read from the document, the note still
        //    unsent), the others as they were, and the cursor is back at the start so the server's
        //    copy is fetched again.
        let loaded = store.load().expect("the store opens");
        assert_eq!(loaded.repaired, vec!["c01".to_string()]);
        assert_eq!(loaded.cursor, Cursor::Start);
        let r = reopen(&store);
        assert_eq!(view(&r), before);
        assert!(store.load().expect("again").repaired.is_empty(), "the repair is stored");
    }

    #[test]
    fn documents_come_back_as_they_were_without_being_loaded() {
        let (_dir, store, engine, mut r) = setup(30);
        r.set_resident_limit(4);
        sync(&engine, &store, &mut r, 1);
        assert_eq!(r.len(), 30);

        // Edits persisted one by one: new chunks while loaded, whole documents once evicted.
        for round in 0..3 {
            for i in 0..10 {
                notes(&mut r, &format!("c{i:02}"), &format!("{round}.{i} "), 1_000 + round);
                save(&store, &mut r);
            }
        }
        assert_eq!(r.outbox_len(), 10);

        let mut again = reopen(&store);
        assert_eq!(again.resident_len(), 0, "opening loads no document");
        assert_eq!(again.outbox_len(), 10);
        assert_eq!(view(&again), view(&r));
        assert_eq!(again.resident_len(), 0, "reading loads no document");

        sync(&engine, &store, &mut again, 2_000);
        let last = reopen(&store);
        assert_eq!(last.outbox_len(), 0);
        assert_eq!(view(&last), view(&again));
        for id in last.doc_ids() {
            assert_eq!(last.heads(id), engine.doc_heads(TEAM, id).expect("heads"), "{id}");
        }
        match last.get("c03") {
            Some(Document::Customer(c)) => assert_eq!(c.notes.as_str(), "2.3 1.3 0.3 "),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn entries_written_before_pending_was_recorded_are_upgraded_on_open() {
        let (_dir, store, engine, mut r) = setup(3);
        sync(&engine, &store, &mut r, 1);
        notes(&mut r, "c01", "unsent ", 1_000);
        save(&store, &mut r);

        // What the previous version wrote: no `pending`.
        #[derive(Serialize)]
        struct Legacy {
            kind: DocKind,
            acked: Vec<serde_bytes::ByteBuf>,
            chunks: u32,
            saved: Vec<serde_bytes::ByteBuf>,
        }
        for item in store.db.scan_prefix(b"d/") {
            let (k, v) = item.expect("entry");
            let e: DocEntry = dec("doc entry", &v).expect("entry");
            let legacy = Legacy { kind: e.kind, acked: e.acked, chunks: e.chunks, saved: e.saved };
            store.db.insert(k, enc(&legacy).expect("encode")).expect("write");
        }

        let again = reopen(&store);
        assert_eq!(again.outbox_len(), 1);
        assert_eq!(view(&again), view(&r));
        for item in store.db.scan_prefix(b"d/") {
            let (_, v) = item.expect("entry");
            let e: DocEntry = dec("doc entry", &v).expect("entry");
            assert!(e.pending.is_some(), "upgraded");
        }
        assert_eq!(reopen(&store).outbox_len(), 1);
    }

    #[test]
    fn an_edit_set_aside_does_not_come_back_after_reopening() {
        let (_dir, store, engine, mut r) = setup(1);
        r.create(Document::Visit(Visit::planned("v1", "c00", "alice", 0, 10)), 0).expect("plan");
        sync(&engine, &store, &mut r, 1);

        // An outdated app writes a check-in off the globe; it is persisted, then set aside.
        r.update_unchecked("v1", 2_000, |d| {
            if let Document::Visit(v) = d {
                v.checkins.push(checkin("bad", (123.0, 4.0), 5.0, 2));
            }
        })
        .expect("unchecked edit");
        save(&store, &mut r);
        sync(&engine, &store, &mut r, 3);
        assert_eq!(r.rejected().len(), 1);

        let again = reopen(&store);
        assert_eq!(again.outbox_len(), 0);
        assert_eq!(again.heads("v1"), engine.doc_heads(TEAM, "v1").expect("heads"));
        match again.get("v1") {
            Some(Document::Visit(v)) => assert!(v.checkins.is_empty(), "{:?}", v.checkins),
            other => panic!("{other:?}"),
        }
        assert_eq!(again.rejected().len(), 1);
    }
}
