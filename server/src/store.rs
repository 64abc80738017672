//! sled as the server's key-value backend.
//!
//! All keys live in one tree so that one `apply_batch` is atomic across documents, feed and indexes;
//! the batch is flushed before `apply` returns, which is what makes an acknowledged push durable.

use std::path::Path;

use fieldsync_core::storage::{KvBackend, KvOp, KvStorage, Result, StorageError};

/// The server's storage: the core's key-value layout over sled.
pub type SledStorage = KvStorage<SledKv>;

#[derive(Debug, Clone)]
pub struct SledKv {
    db: sled::Db,
}

fn backend(e: sled::Error) -> StorageError {
    StorageError::Backend(e.to_string())
}

impl SledKv {
    /// Opens (or creates) the store in `dir`. `cache_bytes` bounds sled's page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self> {
        let config = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput);
        // A store just closed in this process (a restart) is released by sled's background threads
        // a moment after the last handle drops: wait for its file lock a little, never forever.
        let mut attempts = 0;
        loop {
            match config.open() {
                Ok(db) => return Ok(SledKv { db }),
                Err(e) if attempts < 50 && e.to_string().contains("could not acquire lock") => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(backend(e)),
            }
        }
    }

    /// A store that lives only as long as the process (tests of the conformance suite).
    pub fn temporary() -> Result<Self> {
        let db = sled::Config::new().temporary(true).open().map_err(backend)?;
        Ok(SledKv { db })
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(backend)
    }
}

impl KvBackend for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(vec![]);
        }
        self.db
            .range(start..end)
            .take(limit)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(backend))
            .collect()
    }

    fn apply(&self, ops: Vec<KvOp>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                KvOp::Put(k, v) => batch.insert(k, v),
                KvOp::Delete(k) => batch.remove(k),
            }
        }
        self.db.apply_batch(batch).map_err(backend)?;
        // Acknowledged means durable.
        self.db.flush().map_err(backend)?;
        Ok(())
    }
}

/// Opens the storage in a data directory.
pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledStorage> {
    Ok(KvStorage::new(SledKv::open(dir, cache_bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sled_storage_passes_the_conformance_suite() {
        fieldsync_core::storage::conformance::run_all(|| {
            KvStorage::new(SledKv::temporary().expect("temporary sled"))
        });
    }

    #[test]
    fn a_committed_batch_survives_reopening_the_files() {
        use fieldsync_core::docs::{Audience, DocKind};
        use fieldsync_core::storage::{Batch, DocData, DocWrite, Storage};
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = open(dir.path(), 1 << 20).expect("open");
            let mut b = Batch::new("t", 0);
            b.docs.push(DocWrite {
                doc_id: "d".into(),
                kind: DocKind::Visit,
                audience: Audience::Team,
                data: DocData::Append(b"bytes".to_vec()),
            });
            s.commit(b).expect("commit");
        }
        let s = open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(s.load_doc("t", "d").expect("load").as_deref(), Some(&b"bytes"[..]));
    }
}
