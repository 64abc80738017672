//! sled as the server's key-value backend.
//!
//! All keys live in one tree so that one `apply_batch` is atomic across documents, feed and indexes;
//! the batch is flushed before `apply` returns, which is what makes an acknowledged push durable.
//!
//! A full disk must cost nothing. sled applies a batch in memory before it writes it, and under
//! `ENOSPC` it has been seen to serve a batch whose flush failed and to leave files it could not
//! open again. So the store never lets the disk fill: before each batch it asks the filesystem how
//! much is free, and refuses the batch ([`StorageError::Full`], HTTP 507) when writing it could eat
//! into the reserve ([`SledKv::open`]'s `min_free_bytes`) — like etcd's space quota. Reads go on;
//! writes resume by themselves once space is freed. Should a write fail anyway (another process
//! filled the disk, an I/O error), the store is *poisoned*: every later read and write fails
//! until the server is restarted and sled recovers its last durable state, so nothing that was not
//! acknowledged is ever served.
//!
//! Nothing is served before it is durable either. sled makes a batch visible to readers when it
//! is applied, and durable only when the flush returns; a pull that read a feed entry in between,
//! with the process killed before the flush, would carry a cursor past a number the restarted
//! server hands to a different change, which that device would then never pull. So a batch is
//! applied and flushed under [`SledKv`]'s write gate, and every read holds the gate shared: a reader
//! sees the store as it was before the batch or as it is once the batch is on disk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use fieldsync_core::storage::{ExportSink, KvBackend, KvOp, KvStorage, Result, StorageError};

/// The server's storage: the core's key-value layout over the backend it was opened on — sled
/// ([`SledKv`]) in production.
pub type ServerStorage = KvStorage<Box<dyn KvBackend>>;

/// Free space kept on the data directory's filesystem by default: sled's own log rewriting, the
/// operating system and an operator's shell need room when writes stop.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;

/// What a batch may cost on disk, per byte of keys and values: sled writes it to its log, then to
/// the pages it rewrites.
const DISK_BYTES_PER_BATCH_BYTE: u64 = 3;

#[cfg(test)]
type FlushHold = (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);

#[derive(Debug, Clone)]
pub struct SledKv {
    db: sled::Db,
    /// The directory whose filesystem's free space is checked before each batch.
    dir: PathBuf,
    min_free_bytes: u64,
    /// Set when a write failed: sled's memory may then hold what its files do not.
    poisoned: Arc<AtomicBool>,
    /// Held exclusively from a batch's apply to the end of its flush, shared by every read.
    gate: Arc<RwLock<()>>,
    /// Held shared by every batch, exclusively by an export: a backup waits for the batches in
    /// flight and holds off new ones, and reads go on (they never take it).
    exporting: Arc<RwLock<()>>,
    /// Tests hold a write between its apply and its flush: it says when it got there, then waits.
    #[cfg(test)]
    before_flush: Arc<std::sync::Mutex<Option<FlushHold>>>,
}

fn backend(e: sled::Error) -> StorageError {
    StorageError::Backend(e.to_string())
}

/// Bytes the unprivileged may still write on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

impl SledKv {
    /// Opens (or creates) the store in `dir`. `cache_bytes` bounds sled's page cache;
    /// `min_free_bytes` is the free space writes never eat into.
    pub fn open(dir: &Path, cache_bytes: u64, min_free_bytes: u64) -> Result<Self> {
        let config = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput);
        // A store just closed in this process (a restart) is released by sled's background threads
        // a moment after the last handle drops: wait for its file lock a little, never forever.
        let mut attempts = 0;
        loop {
            match config.open() {
                Ok(db) => {
                    return Ok(SledKv {
                        db,
                        dir: dir.to_path_buf(),
                        min_free_bytes,
                        poisoned: Arc::default(),
                        gate: Arc::default(),
                        exporting: Arc::default(),
                        #[cfg(test)]
                        before_flush: Arc::default(),
                    });
                }
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
        Ok(SledKv {
            db,
            dir: std::env::temp_dir(),
            min_free_bytes: 0,
            poisoned: Arc::default(),
            gate: Arc::default(),
            exporting: Arc::default(),
            #[cfg(test)]
            before_flush: Arc::default(),
        })
    }

    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(backend)
    }
}

impl SledKv {
    fn healthy(&self) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(StorageError::Backend(
                "a write failed earlier: the store serves nothing until the server is restarted".into(),
            ));
        }
        Ok(())
    }

    /// Refuses a batch of `bytes` that could take the filesystem below its reserve.
    fn check_space(&self, bytes: u64) -> Result<()> {
        if self.min_free_bytes == 0 {
            return Ok(());
        }
        let free = free_bytes(&self.dir).map_err(|e| StorageError::Backend(format!("statvfs: {e}")))?;
        let needed = bytes.saturating_mul(DISK_BYTES_PER_BATCH_BYTE).saturating_add(self.min_free_bytes);
        if free < needed {
            return Err(StorageError::Full(format!(
                "{free} bytes free, a batch of {bytes} bytes needs {needed} with the reserve of {}",
                self.min_free_bytes
            )));
        }
        Ok(())
    }

    /// A failed write leaves sled's memory ahead of its files: nothing is served after it.
    fn poison(&self, e: sled::Error) -> StorageError {
        self.poisoned.store(true, Ordering::SeqCst);
        tracing::error!(error = %e, "a storage write failed: the store is closed to reads and writes until restart");
        backend(e)
    }
}

impl KvBackend for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let _durable = self.gate.read().unwrap_or_else(|e| e.into_inner());
        self.healthy()?;
        Ok(self.db.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let _durable = self.gate.read().unwrap_or_else(|e| e.into_inner());
        self.healthy()?;
        if start >= end {
            return Ok(vec![]);
        }
        self.db
            .range(start..end)
            .take(limit)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(backend))
            .collect()
    }

    fn export(&self, each: &mut ExportSink<'_>) -> Result<()> {
        // No batch is in flight (each holds `exporting` shared from before its apply to after its
        // flush), none starts, and what is there is on disk. The read gate is not taken: a std
        // RwLock queues new readers behind a waiting writer, which would stall every read for the
        // length of the backup.
        let _quiet = self.exporting.write().unwrap_or_else(|e| e.into_inner());
        self.healthy()?;
        for pair in self.db.iter() {
            let (k, v) = pair.map_err(backend)?;
            each(&k, &v)?;
        }
        Ok(())
    }

    fn apply(&self, ops: Vec<KvOp>) -> Result<()> {
        self.healthy()?;
        let bytes: u64 = ops
            .iter()
            .map(|op| match op {
                KvOp::Put(k, v) => (k.len() + v.len()) as u64,
                KvOp::Delete(k) => k.len() as u64,
            })
            .sum();
        self.check_space(bytes)?;
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                KvOp::Put(k, v) => batch.insert(k, v),
                KvOp::Delete(k) => batch.remove(k),
            }
        }
        let _not_exporting = self.exporting.read().unwrap_or_else(|e| e.into_inner());
        // Acknowledged means durable, and served means durable: no read between apply and flush.
        let _gate = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let started = std::time::Instant::now();
        self.db.apply_batch(batch).map_err(|e| self.poison(e))?;
        #[cfg(test)]
        if let Some((reached, release)) = &*self.before_flush.lock().expect("hold") {
            reached.send(()).expect("the test waits");
            let _ = release.recv_timeout(std::time::Duration::from_secs(5));
        }
        self.db.flush().map_err(|e| self.poison(e))?;
        crate::metrics::record_flush(started.elapsed().as_secs_f64(), bytes);
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// Opens the storage in a data directory.
pub fn open(dir: &Path, cache_bytes: u64, min_free_bytes: u64) -> Result<ServerStorage> {
    Ok(KvStorage::new(Box::new(SledKv::open(dir, cache_bytes, min_free_bytes)?)))
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
    fn a_batch_is_not_read_before_its_flush_returns() {
        use std::sync::mpsc::channel;
        use std::time::Duration;
        let kv = SledKv::temporary().expect("temporary sled");
        kv.apply(vec![KvOp::Put(b"k".to_vec(), b"before".to_vec())]).expect("first batch");

        // 1. A second batch is applied and held before its flush, as if the disk were slow.
        let (reached_tx, reached) = channel();
        let (release, release_rx) = channel();
        *kv.before_flush.lock().expect("hold") = Some((reached_tx, release_rx));
        let writer = {
            let kv = kv.clone();
            std::thread::spawn(move || kv.apply(vec![KvOp::Put(b"k".to_vec(), b"after".to_vec())]))
        };
        reached.recv_timeout(Duration::from_secs(5)).expect("the batch reaches its flush");

        // 2. A reader meanwhile must not see it: a kill now would lose what it read.
        let (read_tx, read) = channel();
        let reader = {
            let kv = kv.clone();
            std::thread::spawn(move || read_tx.send(kv.get(b"k").expect("read")).expect("send"))
        };
        match read.recv_timeout(Duration::from_millis(300)) {
            Err(_) => {}
            Ok(v) => {
                assert_eq!(v.as_deref(), Some(&b"before"[..]), "a read saw a batch before it was durable")
            }
        }

        // 3. Once flushed, the batch is what everybody reads.
        release.send(()).expect("release");
        writer.join().expect("writer").expect("the held batch commits");
        reader.join().expect("reader");
        assert_eq!(kv.get(b"k").expect("read").as_deref(), Some(&b"after"[..]));
    }

    #[test]
    fn an_export_is_one_durable_state_and_reads_go_on_while_it_runs() {
        use std::sync::mpsc::channel;
        use std::time::Duration;
        let kv = SledKv::temporary().expect("temporary sled");
        kv.apply(vec![KvOp::Put(b"a".to_vec(), b"1".to_vec()), KvOp::Put(b"b".to_vec(), b"1".to_vec())])
            .expect("first batch");

        // 1. A batch of both keys is held before its flush; an export started now must not see it.
        let (reached_tx, reached) = channel();
        let (release, release_rx) = channel();
        *kv.before_flush.lock().expect("hold") = Some((reached_tx, release_rx));
        let writer = {
            let kv = kv.clone();
            std::thread::spawn(move || {
                kv.apply(vec![
                    KvOp::Put(b"a".to_vec(), b"2".to_vec()),
                    KvOp::Put(b"b".to_vec(), b"2".to_vec()),
                ])
            })
        };
        reached.recv_timeout(Duration::from_secs(5)).expect("the batch reaches its flush");
        let (exported_tx, exported) = channel();
        let exporter = {
            let kv = kv.clone();
            std::thread::spawn(move || {
                let mut pairs = Vec::new();
                kv.export(&mut |k, v| {
                    pairs.push((k.to_vec(), v.to_vec()));
                    Ok(())
                })
                .expect("export");
                exported_tx.send(pairs).expect("send");
            })
        };
        if let Ok(pairs) = exported.recv_timeout(Duration::from_millis(300)) {
            panic!("an export ran while a batch was not yet durable: {pairs:?}");
        }
        release.send(()).expect("release");
        writer.join().expect("writer").expect("the held batch commits");
        let pairs = exported.recv_timeout(Duration::from_secs(5)).expect("the export finishes");
        exporter.join().expect("exporter");
        let values: Vec<&[u8]> = pairs.iter().map(|(_, v)| v.as_slice()).collect();
        assert_eq!(values, [b"2", b"2"], "the export after the flush holds the whole batch");
        *kv.before_flush.lock().expect("hold") = None;

        // 2. An export held in the middle: reads are answered, a batch waits for the export's end.
        let (inside_tx, inside) = channel();
        let (go_on, go_on_rx) = channel::<()>();
        let exporter = {
            let kv = kv.clone();
            std::thread::spawn(move || {
                let mut pairs = Vec::new();
                kv.export(&mut |k, v| {
                    if pairs.is_empty() {
                        inside_tx.send(()).expect("send");
                        go_on_rx.recv_timeout(Duration::from_secs(5)).expect("released");
                    }
                    pairs.push((k.to_vec(), v.to_vec()));
                    Ok(())
                })
                .expect("export");
                pairs
            })
        };
        inside.recv_timeout(Duration::from_secs(5)).expect("the export starts");
        let (write_tx, written) = channel();
        let writer = {
            let kv = kv.clone();
            std::thread::spawn(move || {
                let r = kv.apply(vec![
                    KvOp::Put(b"a".to_vec(), b"3".to_vec()),
                    KvOp::Put(b"b".to_vec(), b"3".to_vec()),
                ]);
                write_tx.send(()).expect("send");
                r
            })
        };
        assert!(
            written.recv_timeout(Duration::from_millis(300)).is_err(),
            "a batch landed in the middle of an export"
        );
        let (read_tx, read) = channel();
        let reader = {
            let kv = kv.clone();
            std::thread::spawn(move || read_tx.send(kv.get(b"a").expect("read")).expect("send"))
        };
        let value =
            read.recv_timeout(Duration::from_secs(2)).expect("a read is answered while an export runs");
        assert_eq!(value.as_deref(), Some(&b"2"[..]));
        go_on.send(()).expect("release");
        let values: Vec<Vec<u8>> = exporter.join().expect("exporter").into_iter().map(|(_, v)| v).collect();
        assert_eq!(values, [b"2".to_vec(), b"2".to_vec()], "one state: the batch waited");
        writer.join().expect("writer").expect("the waiting batch commits");
        reader.join().expect("reader");
    }

    #[test]
    fn a_committed_batch_survives_reopening_the_files() {
        use fieldsync_core::docs::{Audience, DocKind};
        use fieldsync_core::storage::{Batch, DocData, DocWrite, Storage};
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = open(dir.path(), 1 << 20, DEFAULT_MIN_FREE_BYTES).expect("open");
            let mut b = Batch::new("t", 0);
            b.docs.push(DocWrite {
                doc_id: "d".into(),
                kind: DocKind::Visit,
                audience: Audience::Team,
                data: DocData::Append(fieldsync_core::chunks::frame(1, b"bytes")),
            });
            s.commit(b).expect("commit");
        }
        let s = open(dir.path(), 1 << 20, DEFAULT_MIN_FREE_BYTES).expect("reopen");
        assert_eq!(s.load_doc("t", "d").expect("load"), Some(fieldsync_core::chunks::frame(1, b"bytes")));
    }
}
