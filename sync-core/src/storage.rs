//! The storage interface of the server side, and its key-value implementation.
//!
//! [`Storage`] is the one interface the sync engine talks to: documents as a snapshot plus incremental
//! chunks, the per-team change feed, the audience index used to answer "which documents may this
//! rep read" without loading documents, the quarantine, and each rep's recent check-ins.
//!
//! [`KvStorage`] implements it over any ordered key-value store with atomic batches ([`KvBackend`]):
//! [`MemoryKv`] here, sled in the server. A distributed engine can implement [`Storage`] directly.
//! `conformance` (feature `testing`) is the test suite every implementation must pass.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::checkin::CheckinHistory;
use crate::docs::{Audience, DocKind};
use crate::index::{IndexRow, StageChange};

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage backend failed: {0}")]
    Backend(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// One stored document is damaged (a chunk no longer matches its checksum, or the whole does
    /// not load): that document cannot be served or written, every other one can.
    #[error("stored document {doc_id} is damaged: {detail}")]
    Damaged { doc_id: String, detail: String },
    /// The store keeps its free-space reserve: the batch was not applied, nothing changed, and
    /// writes go on by themselves once space is freed. Reads are unaffected.
    #[error("storage is full: {0}")]
    Full(String),
    /// Another writer moved the team's feed head: the batch was not applied.
    #[error("concurrent write to team {team}: expected feed head {expected}, found {found}")]
    Conflict { team: String, expected: u64, found: u64 },
}

/// What the server knows about a stored document without loading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocMeta {
    pub kind: DocKind,
    pub audience: Audience,
    /// Number of stored chunks (maintained by the storage).
    pub chunks: u32,
    /// The document's version: the feed head after the batch that last wrote it. The engine writes
    /// a document only together with feed entries, so every write gives it a new, higher version
    /// (the engine's cache and optimistic commits rely on that).
    pub updated_seq: u64,
}

/// One entry of a team's change feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedEntry {
    pub seq: u64,
    pub doc_id: String,
    pub kind: DocKind,
    /// Device id of the pusher, or [`SERVER_ORIGIN`].
    pub origin: String,
    pub audience: Audience,
    pub body: FeedBody,
}

/// Origin of changes the server writes itself (check-in verification, imports, seeding).
pub const SERVER_ORIGIN: &str = "server";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FeedBody {
    /// Concatenated raw Automerge changes.
    Changes(ByteBuf),
    /// The document entered these users' scope: here it is whole.
    Grant { users: Vec<String>, snapshot: ByteBuf },
    /// The document left these users' scope.
    Revoke { users: Vec<String> },
}

/// A pushed edit the server refused, kept with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub doc_id: String,
    pub kind: DocKind,
    pub device: String,
    pub user: String,
    pub received_at_ms: i64,
    pub code: String,
    pub reason: String,
    /// Hex hashes of the refused changes.
    pub hashes: Vec<String>,
    /// The refused changes themselves: nothing a user typed is lost (empty for a digest).
    pub changes: Vec<ByteBuf>,
    /// How many changes were refused (the hashes listed may be fewer).
    #[serde(default)]
    pub change_count: u64,
    /// Their total size in bytes.
    #[serde(default)]
    pub bytes: u64,
    /// Only a digest was kept: the user's quarantine quota was used up, or the edit was too large.
    #[serde(default)]
    pub digest_only: bool,
    /// The document as its author would have had it, as JSON (kept with whole entries of documents
    /// in the author's scope, up to 64 KiB): the text they tried to write, readable without
    /// decoding changes.
    #[serde(default)]
    pub attempted: Option<String>,
}

/// A device a manager or admin revoked (a lost or stolen phone): its syncs are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRevocation {
    pub device_id: String,
    /// Who revoked it.
    pub by: String,
    pub at_ms: i64,
    /// Why, for the people who read the record later.
    pub reason: String,
}

/// What the quarantine holds for one user: entries, and bytes of kept changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineUsage {
    pub entries: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DocData {
    /// Add a chunk (changes) after the existing ones.
    Append(Vec<u8>),
    /// Replace every chunk with one saved document (compaction).
    Replace(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct DocWrite {
    pub doc_id: String,
    pub kind: DocKind,
    pub audience: Audience,
    pub data: DocData,
}

/// Everything one sync request changes, applied atomically and durably.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    pub team: String,
    /// The feed head the batch was computed against; entries must continue from it.
    pub expected_head: u64,
    pub docs: Vec<DocWrite>,
    pub feed: Vec<FeedEntry>,
    pub quarantine: Vec<QuarantineEntry>,
    /// Reps whose check-in history changed, with the new history.
    pub checkins: Vec<(String, CheckinHistory)>,
    /// Report-index rows of the documents written (`index.rs`), the last one per document wins.
    pub index: Vec<IndexRow>,
    /// Opportunity-stage transitions the batch makes.
    pub stage_changes: Vec<StageChange>,
}

impl Batch {
    pub fn new(team: &str, expected_head: u64) -> Self {
        Batch { team: team.to_string(), expected_head, ..Default::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
            && self.feed.is_empty()
            && self.quarantine.is_empty()
            && self.checkins.is_empty()
            && self.index.is_empty()
            && self.stage_changes.is_empty()
    }

    /// Appends a feed entry with the next sequence number and returns it.
    pub fn push_feed(
        &mut self,
        doc_id: &str,
        kind: DocKind,
        origin: &str,
        audience: Audience,
        body: FeedBody,
    ) -> u64 {
        let seq = self.expected_head + self.feed.len() as u64 + 1;
        self.feed.push(FeedEntry {
            seq,
            doc_id: doc_id.to_string(),
            kind,
            origin: origin.to_string(),
            audience,
            body,
        });
        seq
    }
}

/// The server's storage. Every method is a short, synchronous call; `commit` returns only once the
/// batch is durable.
pub trait Storage: Send + Sync {
    fn doc_meta(&self, team: &str, doc_id: &str) -> Result<Option<DocMeta>>;
    /// The stored chunks concatenated (loadable with `Automerge::load`), each checked against its
    /// checksum first: [`StorageError::Damaged`] names a document whose bytes changed since written.
    fn load_doc(&self, team: &str, doc_id: &str) -> Result<Option<Vec<u8>>>;
    /// Sequence of the last feed entry (0 when none).
    fn feed_head(&self, team: &str) -> Result<u64>;
    /// Entries up to and including this sequence have been trimmed.
    fn feed_horizon(&self, team: &str) -> Result<u64>;
    /// Up to `limit` entries with `seq > after`, in order.
    fn read_feed(&self, team: &str, after: u64, limit: usize) -> Result<Vec<FeedEntry>>;
    /// Document ids (with kinds) after `after`, in id order: the whole team (`member` None) or the
    /// documents whose audience includes `member`.
    fn list_docs(
        &self,
        team: &str,
        member: Option<&str>,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, DocKind)>>;
    /// Applies the batch atomically and durably. Fails with `Conflict` (applying nothing) when the
    /// team's feed head is not `batch.expected_head`.
    fn commit(&self, batch: Batch) -> Result<()>;
    /// Drops feed entries up to `upto`; devices behind it bootstrap again.
    fn trim_feed(&self, team: &str, upto: u64) -> Result<()>;
    fn quarantine(&self, team: &str, limit: usize) -> Result<Vec<QuarantineEntry>>;
    /// What the quarantine holds for one user (maintained by `commit`).
    fn quarantine_usage(&self, team: &str, user: &str) -> Result<QuarantineUsage>;
    /// The rep's recent trusted check-ins (travel-speed checks against neighbours in time).
    fn checkin_history(&self, team: &str, user: &str) -> Result<Option<CheckinHistory>>;
    /// Teams that have a feed.
    fn teams(&self) -> Result<Vec<String>>;
    /// The report-index row of a document (maintained by `commit`).
    fn index_row(&self, team: &str, doc_id: &str) -> Result<Option<IndexRow>>;
    /// Every report-index row of a team, in document-id order.
    fn index_rows(&self, team: &str) -> Result<Vec<IndexRow>>;
    /// Whether the team has any report-index row (without reading them all).
    fn has_index(&self, team: &str) -> Result<bool>;
    /// The team's opportunity-stage transitions, oldest first.
    fn stage_changes(&self, team: &str) -> Result<Vec<StageChange>>;
    /// Records that a device of the team is revoked (durable when this returns; revoking again
    /// keeps the first record) and returns the record kept.
    fn revoke_device(&self, team: &str, revocation: &DeviceRevocation) -> Result<DeviceRevocation>;
    /// The revocation of a device of the team, if it was revoked.
    fn device_revocation(&self, team: &str, device_id: &str) -> Result<Option<DeviceRevocation>>;
}

// ---------------------------------------------------------------------------------------------
// Key-value implementation

/// One write in an atomic key-value batch.
#[derive(Debug, Clone, PartialEq)]
pub enum KvOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// What [`KvBackend::export`] hands each pair to; an error stops the export.
pub type ExportSink<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

/// An ordered key-value store with atomic, durable batches.
pub trait KvBackend: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Pairs with `start <= key < end`, in key order, at most `limit`.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// All or nothing; durable when it returns.
    fn apply(&self, ops: Vec<KvOp>) -> Result<()>;
    /// Bytes the store takes on disk, when it knows (reports and benchmarks).
    fn size_on_disk(&self) -> u64 {
        0
    }
    /// Every pair in key order, as one state: no batch is applied part-way through (backups).
    fn export(&self, each: &mut ExportSink<'_>) -> Result<()>;
}

/// A backend chosen when the process starts: the server's sled, sled behind the fault injector of
/// the tests ([`crate::testing::FaultyKv`]), another database.
impl KvBackend for Box<dyn KvBackend> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).get(key)
    }
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        (**self).scan(start, end, limit)
    }
    fn apply(&self, ops: Vec<KvOp>) -> Result<()> {
        (**self).apply(ops)
    }
    fn size_on_disk(&self) -> u64 {
        (**self).size_on_disk()
    }
    fn export(&self, each: &mut ExportSink<'_>) -> Result<()> {
        (**self).export(each)
    }
}

/// An in-memory backend, for tests and for the device-free parts of the core.
#[derive(Debug, Default)]
pub struct MemoryKv {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryKv {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>>> {
        self.map.lock().map_err(|_| StorageError::Backend("memory store lock poisoned".into()))
    }
}

impl KvBackend for MemoryKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.lock()?.get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(vec![]);
        }
        Ok(self
            .lock()?
            .range(start.to_vec()..end.to_vec())
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn apply(&self, ops: Vec<KvOp>) -> Result<()> {
        let mut map = self.lock()?;
        for op in ops {
            match op {
                KvOp::Put(k, v) => {
                    map.insert(k, v);
                }
                KvOp::Delete(k) => {
                    map.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn export(&self, each: &mut ExportSink<'_>) -> Result<()> {
        // The lock held throughout: no batch lands half-way through.
        let map = self.lock()?;
        map.iter().try_for_each(|(k, v)| each(k, v))
    }
}

/// [`Storage`] over a [`KvBackend`]. Key layout (ids never contain `/`):
///
/// | key | value |
/// |---|---|
/// | `m/{team}/{doc}` | [`DocMeta`] |
/// | `c/{team}/{doc}/{n:010}` | chunk n |
/// | `a/{team}/{user or *}/{doc}` | kind (audience index) |
/// | `f/{team}/{seq:020}` | [`FeedEntry`] |
/// | `h/{team}`, `z/{team}` | feed head, horizon |
/// | `q/{team}/{doc}/{hash}` | [`QuarantineEntry`] |
/// | `u/{team}/{user}` | [`QuarantineUsage`] |
/// | `k/{team}/{user}` | [`CheckinHistory`] |
#[derive(Debug)]
pub struct KvStorage<B> {
    kv: B,
    /// Serialises commits: the read-modify-write of metadata and the head check must not interleave.
    commit_lock: Mutex<()>,
}

/// The audience-index member of documents the whole team reads (plans).
pub const TEAM_WIDE: &str = "*";

pub(crate) fn key(parts: &[&str]) -> Vec<u8> {
    parts.join("/").into_bytes()
}

/// The smallest key greater than every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.push(0xff);
    end
}

/// CBOR, the encoding of every record stored here and in the device library's store.
pub mod cbor {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// `value` as CBOR.
    pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).map_err(|e| format!("encode: {e}"))?;
        Ok(out)
    }

    /// A `what` read back from CBOR; the error names it.
    pub fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, String> {
        ciborium::from_reader(bytes).map_err(|e| format!("{what}: {e}"))
    }
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    cbor::encode(v).map_err(StorageError::Backend)
}

fn dec<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    cbor::decode(what, bytes).map_err(StorageError::Corrupt)
}

fn u64_value(bytes: Option<Vec<u8>>) -> Result<u64> {
    match bytes {
        None => Ok(0),
        Some(b) => {
            let arr: [u8; 8] = b
                .as_slice()
                .try_into()
                .map_err(|_| StorageError::Corrupt("counter is not 8 bytes".into()))?;
            Ok(u64::from_be_bytes(arr))
        }
    }
}

fn audience_members(a: &Audience) -> Vec<&str> {
    match a {
        Audience::Team => vec![TEAM_WIDE],
        Audience::Users(u) => u.iter().map(String::as_str).collect(),
    }
}

impl<B: KvBackend> KvStorage<B> {
    pub fn new(kv: B) -> Self {
        KvStorage { kv, commit_lock: Mutex::new(()) }
    }

    pub fn backend(&self) -> &B {
        &self.kv
    }

    fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let start = match after {
            Some(a) => {
                let mut s = prefix.to_vec();
                s.extend_from_slice(a);
                s.push(0); // strictly after
                s
            }
            None => prefix.to_vec(),
        };
        self.kv.scan(&start, &prefix_end(prefix), limit)
    }
}

impl<B: KvBackend> Storage for KvStorage<B> {
    fn doc_meta(&self, team: &str, doc_id: &str) -> Result<Option<DocMeta>> {
        self.kv.get(&key(&["m", team, doc_id]))?.map(|b| dec("doc meta", &b)).transpose()
    }

    fn load_doc(&self, team: &str, doc_id: &str) -> Result<Option<Vec<u8>>> {
        let prefix = key(&["c", team, doc_id, ""]);
        let chunks = self.scan_prefix(&prefix, None, usize::MAX)?;
        if chunks.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(chunks.iter().map(|(_, v)| v.len()).sum());
        for (n, (_, v)) in chunks.iter().enumerate() {
            // Checked here, as bootstraps send these bytes without loading them.
            crate::chunks::verify(v).map_err(|e| StorageError::Damaged {
                doc_id: doc_id.to_string(),
                detail: format!("stored chunk {n}: {e}"),
            })?;
            out.extend_from_slice(v);
        }
        Ok(Some(out))
    }

    fn feed_head(&self, team: &str) -> Result<u64> {
        u64_value(self.kv.get(&key(&["h", team]))?)
    }

    fn feed_horizon(&self, team: &str) -> Result<u64> {
        u64_value(self.kv.get(&key(&["z", team]))?)
    }

    fn read_feed(&self, team: &str, after: u64, limit: usize) -> Result<Vec<FeedEntry>> {
        let start = key(&["f", team, &format!("{:020}", after.saturating_add(1))]);
        let end = prefix_end(&key(&["f", team, ""]));
        self.kv.scan(&start, &end, limit)?.into_iter().map(|(_, v)| dec("feed entry", &v)).collect()
    }

    fn list_docs(
        &self,
        team: &str,
        member: Option<&str>,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, DocKind)>> {
        let after_opt = (!after.is_empty()).then_some(after.as_bytes());
        let mut found: BTreeMap<String, DocKind> = BTreeMap::new();
        let prefixes: Vec<Vec<u8>> = match member {
            None => vec![key(&["m", team, ""])],
            Some(user) => vec![key(&["a", team, user, ""]), key(&["a", team, TEAM_WIDE, ""])],
        };
        for prefix in prefixes {
            for (k, v) in self.scan_prefix(&prefix, after_opt, limit)? {
                let id = String::from_utf8(k[prefix.len()..].to_vec())
                    .map_err(|_| StorageError::Corrupt("doc id in key".into()))?;
                let kind = if member.is_none() {
                    dec::<DocMeta>("doc meta", &v)?.kind
                } else {
                    dec::<DocKind>("doc kind", &v)?
                };
                found.insert(id, kind);
            }
        }
        Ok(found.into_iter().take(limit).collect())
    }

    fn commit(&self, batch: Batch) -> Result<()> {
        let _guard =
            self.commit_lock.lock().map_err(|_| StorageError::Backend("commit lock poisoned".into()))?;
        let team = batch.team.as_str();
        let head = self.feed_head(team)?;
        if head != batch.expected_head {
            return Err(StorageError::Conflict {
                team: team.to_string(),
                expected: batch.expected_head,
                found: head,
            });
        }
        let mut ops = Vec::new();
        let mut new_head = head;
        for (i, entry) in batch.feed.iter().enumerate() {
            if entry.seq != head + i as u64 + 1 {
                return Err(StorageError::Backend(format!(
                    "feed entries must continue the head: got {} after {}",
                    entry.seq,
                    head + i as u64
                )));
            }
            new_head = entry.seq;
            ops.push(KvOp::Put(key(&["f", team, &format!("{:020}", entry.seq)]), enc(entry)?));
        }
        if new_head != head {
            ops.push(KvOp::Put(key(&["h", team]), new_head.to_be_bytes().to_vec()));
        }
        // Several writes of one document in a batch build on each other.
        let mut metas: BTreeMap<String, Option<DocMeta>> = BTreeMap::new();
        for w in &batch.docs {
            let old = match metas.get(&w.doc_id) {
                Some(m) => m.clone(),
                None => self.doc_meta(team, &w.doc_id)?,
            };
            let old_chunks = old.as_ref().map_or(0, |m| m.chunks);
            let chunks = match &w.data {
                DocData::Append(bytes) => {
                    ops.push(KvOp::Put(
                        key(&["c", team, &w.doc_id, &format!("{old_chunks:010}")]),
                        bytes.clone(),
                    ));
                    old_chunks + 1
                }
                DocData::Replace(bytes) => {
                    for n in 1..old_chunks {
                        ops.push(KvOp::Delete(key(&["c", team, &w.doc_id, &format!("{n:010}")])));
                    }
                    ops.push(KvOp::Put(key(&["c", team, &w.doc_id, &format!("{:010}", 0)]), bytes.clone()));
                    1
                }
            };
            if let Some(old) = &old {
                for m in audience_members(&old.audience) {
                    ops.push(KvOp::Delete(key(&["a", team, m, &w.doc_id])));
                }
            }
            for m in audience_members(&w.audience) {
                ops.push(KvOp::Put(key(&["a", team, m, &w.doc_id]), enc(&w.kind)?));
            }
            let meta = DocMeta { kind: w.kind, audience: w.audience.clone(), chunks, updated_seq: new_head };
            ops.push(KvOp::Put(key(&["m", team, &w.doc_id]), enc(&meta)?));
            metas.insert(w.doc_id.clone(), Some(meta));
        }
        let mut usage: BTreeMap<&str, QuarantineUsage> = BTreeMap::new();
        for q in &batch.quarantine {
            let first = q.hashes.first().map(String::as_str).unwrap_or("none");
            let k = key(&["q", team, &q.doc_id, first]);
            // The same refusal pushed again replaces its entry and is counted once.
            let known =
                self.kv.get(&k)?.is_some() || ops.iter().any(|op| matches!(op, KvOp::Put(p, _) if *p == k));
            if !known {
                let u = match usage.get(q.user.as_str()) {
                    Some(u) => *u,
                    None => self.quarantine_usage(team, &q.user)?,
                };
                let kept: u64 = q.changes.iter().map(|c| c.len() as u64).sum();
                usage.insert(&q.user, QuarantineUsage { entries: u.entries + 1, bytes: u.bytes + kept });
            }
            ops.push(KvOp::Put(k, enc(q)?));
        }
        for (user, u) in usage {
            ops.push(KvOp::Put(key(&["u", team, user]), enc(&u)?));
        }
        for (user, c) in &batch.checkins {
            ops.push(KvOp::Put(key(&["k", team, user]), enc(c)?));
        }
        for row in &batch.index {
            ops.push(KvOp::Put(key(&["r", team, row.id()]), enc(row)?));
        }
        for (i, change) in batch.stage_changes.iter().enumerate() {
            ops.push(KvOp::Put(
                key(&["s", team, &format!("{new_head:020}"), &format!("{i:06}")]),
                enc(change)?,
            ));
        }
        self.kv.apply(ops)
    }

    fn trim_feed(&self, team: &str, upto: u64) -> Result<()> {
        let _guard =
            self.commit_lock.lock().map_err(|_| StorageError::Backend("commit lock poisoned".into()))?;
        let upto = upto.min(self.feed_head(team)?);
        let horizon = self.feed_horizon(team)?;
        if upto <= horizon {
            return Ok(());
        }
        let start = key(&["f", team, &format!("{:020}", horizon + 1)]);
        let end = key(&["f", team, &format!("{:020}", upto + 1)]);
        let mut ops: Vec<KvOp> =
            self.kv.scan(&start, &end, usize::MAX)?.into_iter().map(|(k, _)| KvOp::Delete(k)).collect();
        ops.push(KvOp::Put(key(&["z", team]), upto.to_be_bytes().to_vec()));
        self.kv.apply(ops)
    }

    fn quarantine(&self, team: &str, limit: usize) -> Result<Vec<QuarantineEntry>> {
        let mut entries: Vec<QuarantineEntry> = self
            .scan_prefix(&key(&["q", team, ""]), None, usize::MAX)?
            .into_iter()
            .map(|(_, v)| dec("quarantine entry", &v))
            .collect::<Result<_>>()?;
        entries.sort_by_key(|e| std::cmp::Reverse(e.received_at_ms));
        entries.truncate(limit);
        Ok(entries)
    }

    fn quarantine_usage(&self, team: &str, user: &str) -> Result<QuarantineUsage> {
        Ok(self
            .kv
            .get(&key(&["u", team, user]))?
            .map(|b| dec("quarantine usage", &b))
            .transpose()?
            .unwrap_or_default())
    }

    fn index_row(&self, team: &str, doc_id: &str) -> Result<Option<IndexRow>> {
        self.kv.get(&key(&["r", team, doc_id]))?.map(|b| dec("index row", &b)).transpose()
    }

    fn index_rows(&self, team: &str) -> Result<Vec<IndexRow>> {
        self.scan_prefix(&key(&["r", team, ""]), None, usize::MAX)?
            .into_iter()
            .map(|(_, v)| dec("index row", &v))
            .collect()
    }

    fn has_index(&self, team: &str) -> Result<bool> {
        Ok(!self.scan_prefix(&key(&["r", team, ""]), None, 1)?.is_empty())
    }

    fn stage_changes(&self, team: &str) -> Result<Vec<StageChange>> {
        self.scan_prefix(&key(&["s", team, ""]), None, usize::MAX)?
            .into_iter()
            .map(|(_, v)| dec("stage change", &v))
            .collect()
    }

    fn teams(&self) -> Result<Vec<String>> {
        self.team_names()
    }

    fn checkin_history(&self, team: &str, user: &str) -> Result<Option<CheckinHistory>> {
        self.kv.get(&key(&["k", team, user]))?.map(|b| dec("check-in history", &b)).transpose()
    }

    fn revoke_device(&self, team: &str, revocation: &DeviceRevocation) -> Result<DeviceRevocation> {
        if let Some(first) = self.device_revocation(team, &revocation.device_id)? {
            return Ok(first);
        }
        self.kv.apply(vec![KvOp::Put(key(&["v", team, &revocation.device_id]), enc(revocation)?)])?;
        Ok(revocation.clone())
    }

    fn device_revocation(&self, team: &str, device_id: &str) -> Result<Option<DeviceRevocation>> {
        self.kv.get(&key(&["v", team, device_id]))?.map(|b| dec("device revocation", &b)).transpose()
    }
}

impl<B: KvBackend> KvStorage<B> {
    fn team_names(&self) -> Result<Vec<String>> {
        let prefix = key(&["h", ""]);
        self.scan_prefix(&prefix, None, usize::MAX)?
            .into_iter()
            .map(|(k, _)| {
                String::from_utf8(k[prefix.len()..].to_vec())
                    .map_err(|_| StorageError::Corrupt("team name in key".into()))
            })
            .collect()
    }

    /// Called once on a store restored from a backup, before it serves: each team's feed head jumps
    /// [`RESTORE_FEED_GAP`] ahead and the feed is trimmed up to it. Devices synced with the server
    /// after the backup was taken hold cursors past the backup's head; without the jump the
    /// restored server would hand those sequence numbers to new changes, which such a device would
    /// never pull. With it, every cursor issued before the restore lies behind the horizon: each
    /// device bootstraps, and pushes what its copies hold that the restored store does not.
    /// Returns each team with its new head.
    pub fn restart_feeds(&self) -> Result<Vec<(String, u64)>> {
        let _guard =
            self.commit_lock.lock().map_err(|_| StorageError::Backend("commit lock poisoned".into()))?;
        let mut ops = Vec::new();
        let mut heads = Vec::new();
        for team in self.team_names()? {
            let head = self.feed_head(&team)?.checked_add(RESTORE_FEED_GAP).ok_or_else(|| {
                StorageError::Corrupt(format!("team {team}: the feed head cannot move past u64"))
            })?;
            let start = key(&["f", &team, ""]);
            ops.extend(
                self.kv
                    .scan(&start, &prefix_end(&start), usize::MAX)?
                    .into_iter()
                    .map(|(k, _)| KvOp::Delete(k)),
            );
            ops.push(KvOp::Put(key(&["h", &team]), head.to_be_bytes().to_vec()));
            ops.push(KvOp::Put(key(&["z", &team]), head.to_be_bytes().to_vec()));
            heads.push((team, head));
        }
        self.kv.apply(ops)?;
        Ok(heads)
    }
}

/// How far a restore moves each feed head ([`KvStorage::restart_feeds`]): more sequence numbers than
/// a team issues between a backup and its restore (2^40: a thousand changes a second for 34 years).
pub const RESTORE_FEED_GAP: u64 = 1 << 40;

/// An in-memory [`Storage`].
pub type MemoryStorage = KvStorage<MemoryKv>;

impl MemoryStorage {
    pub fn in_memory() -> Self {
        KvStorage::new(MemoryKv::default())
    }
}

pub mod backup;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;

#[cfg(test)]
mod tests {
    #[test]
    fn the_memory_storage_passes_the_conformance_suite() {
        super::conformance::run_all(super::MemoryStorage::in_memory);
    }

    #[test]
    fn a_damaged_chunk_is_an_error_naming_its_document_and_the_others_load() {
        use super::*;
        let s = MemoryStorage::in_memory();
        let mut b = Batch::new("t", 0);
        for (doc, data) in [("c1", b"one".as_slice()), ("c1", b"two"), ("c2", b"three")] {
            b.docs.push(DocWrite {
                doc_id: doc.into(),
                kind: DocKind::Customer,
                audience: Audience::Team,
                data: DocData::Append(crate::chunks::frame(1, data)),
            });
        }
        s.commit(b).expect("commit");
        // One bit of c1's second chunk flips on disk.
        let k = key(&["c", "t", "c1", &format!("{:010}", 1)]);
        let mut v = s.backend().get(&k).expect("get").expect("chunk 1");
        *v.last_mut().expect("bytes") ^= 0x04;
        s.backend().apply(vec![KvOp::Put(k, v)]).expect("damage");

        match s.load_doc("t", "c1") {
            Err(StorageError::Damaged { doc_id, detail }) => {
                assert_eq!(doc_id, "c1");
                assert!(detail.contains("chunk 1"), "{detail}");
            }
            other => panic!("a damaged chunk loaded: {other:?}"),
        }
        assert_eq!(s.load_doc("t", "c2").expect("c2 loads"), Some(crate::chunks::frame(1, b"three")));
        assert!(s.doc_meta("t", "c1").expect("meta").is_some(), "its metadata still reads");
    }
}
