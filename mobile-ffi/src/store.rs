//! The device's crash-safe local store: sled with a small cache.
//!
//! Every write the app sees return has been applied as one atomic sled batch and flushed, so it
//! survives a `kill -9` right after. Documents are kept as Automerge chunks (incremental changes,
//! compacted into one saved document now and then), next to what the server is known to hold of them.
//!
//! | key | value |
//! |---|---|
//! | `meta/device` | device id |
//! | `meta/principal` | team, user and role the store belongs to |
//! | `meta/cursor` | feed cursor |
//! | `meta/rejected` | kept rejected edits |
//! | `meta/last_sync_ms` | time of the last successful sync |
//! | `d/{doc}` | kind, acknowledged heads, chunk count |
//! | `c/{doc}/{n:08}` | chunk n |

use std::path::Path;

use automerge::{Automerge, ChangeHash};
use fieldsync_core::Principal;
use fieldsync_core::client::{LocalDoc, RejectedEdit, Replica};
use fieldsync_core::docs::DocKind;
use fieldsync_core::protocol::Cursor;
use serde::{Deserialize, Serialize};

/// Errors of the local store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("local store: {0}")]
    Backend(#[from] sled::Error),
    #[error("local store is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// After this many chunks a document is saved whole again.
const COMPACT_AFTER: u32 = 16;

#[derive(Debug, Serialize, Deserialize)]
struct DocEntry {
    kind: DocKind,
    acked: Vec<serde_bytes::ByteBuf>,
    chunks: u32,
    /// Heads covered by the stored chunks.
    saved: Vec<serde_bytes::ByteBuf>,
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).map_err(|e| StoreError::Corrupt(format!("encode: {e}")))?;
    Ok(out)
}

fn dec<T: for<'de> Deserialize<'de>>(what: &str, b: &[u8]) -> Result<T> {
    ciborium::from_reader(b).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
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
    pub docs: Vec<(String, LocalDoc)>,
    pub rejected: Vec<RejectedEdit>,
    pub last_sync_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct DeviceStore {
    db: sled::Db,
}

impl DeviceStore {
    /// Opens the store in `dir` with a small page cache (phones are short of memory).
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(2 * 1024 * 1024)
            .mode(sled::Mode::LowSpace)
            .open()?;
        Ok(DeviceStore { db })
    }

    fn get_meta<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>> {
        self.db.get(key)?.map(|v| dec(key, &v)).transpose()
    }

    pub fn load(&self) -> Result<Loaded> {
        let mut docs = Vec::new();
        for item in self.db.scan_prefix(b"d/") {
            let (k, v) = item?;
            let id = String::from_utf8(k[2..].to_vec()).map_err(|_| StoreError::Corrupt("doc id".into()))?;
            let entry: DocEntry = dec("doc entry", &v)?;
            let mut bytes = Vec::new();
            for chunk in self.db.scan_prefix(format!("c/{id}/").as_bytes()) {
                bytes.extend_from_slice(&chunk?.1);
            }
            let doc =
                Automerge::load(&bytes).map_err(|e| StoreError::Corrupt(format!("document {id}: {e}")))?;
            docs.push((id, LocalDoc { doc, kind: entry.kind, acked: unhash(&entry.acked)? }));
        }
        Ok(Loaded {
            device_id: self.get_meta("meta/device")?,
            principal: self.get_meta("meta/principal")?,
            cursor: self.get_meta("meta/cursor")?.unwrap_or(Cursor::Start),
            docs,
            rejected: self.get_meta("meta/rejected")?.unwrap_or_default(),
            last_sync_ms: self.get_meta("meta/last_sync_ms")?,
        })
    }

    pub fn set_identity(&self, device_id: &str, principal: &Principal) -> Result<()> {
        let mut b = sled::Batch::default();
        b.insert("meta/device", enc(&device_id)?);
        b.insert("meta/principal", enc(principal)?);
        self.commit(b)
    }

    fn commit(&self, batch: sled::Batch) -> Result<()> {
        self.db.apply_batch(batch)?;
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
        let mut b = sled::Batch::default();
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
                Some(LocalDoc { doc, kind, acked }) => {
                    let heads = doc.get_heads();
                    let (chunks, saved) = match &old {
                        Some(o) if o.chunks < COMPACT_AFTER => {
                            let saved = unhash(&o.saved)?;
                            let delta = doc.save_after(&saved);
                            if !delta.is_empty() {
                                b.insert(format!("c/{id}/{:08}", o.chunks).as_bytes(), delta);
                                (o.chunks + 1, heads)
                            } else {
                                (o.chunks, saved)
                            }
                        }
                        _ => {
                            for chunk in self.db.scan_prefix(format!("c/{id}/").as_bytes()).keys() {
                                b.remove(chunk?);
                            }
                            b.insert(format!("c/{id}/{:08}", 0).as_bytes(), doc.save());
                            (1, heads)
                        }
                    };
                    let entry = DocEntry { kind: *kind, acked: hashes(acked), chunks, saved: hashes(&saved) };
                    b.insert(key.as_bytes(), enc(&entry)?);
                }
            }
        }
        b.insert("meta/cursor", enc(replica.cursor())?);
        b.insert("meta/rejected", enc(&replica.rejected())?);
        if let Some(t) = last_sync_ms {
            b.insert("meta/last_sync_ms", enc(&t)?);
        }
        self.commit(b)
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}
