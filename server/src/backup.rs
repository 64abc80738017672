//! Backups of a data directory, taken while the server serves, and restores into a new one.
//!
//! A backup is the store's [`KvBackend::export`] — one consistent state: the write gate is held, so
//! no batch lands half-way, and every push acknowledged before the backup began is in it — plus
//! the development token secret, so tokens issued before still verify after a restore. The file
//! is written beside its final name, synced, then renamed: a backup that exists is whole.
//!
//! A restore writes the records into a new directory as it reads them and, should the file turn
//! out damaged or cut short, removes what it wrote. It then restarts every team's feed past any
//! cursor a device can hold ([`KvStorage::restart_feeds`]), so each device bootstraps from the
//! restored state and sends up what its copies hold that the backup missed.
//!
//! A running server holds its data directory's lock; `fieldsync backup --data DIR` asks it through
//! its admin socket ([`crate::admin`]).

use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

use fieldsync_core::storage::backup::{BackupError, BackupReader, BackupSummary, BackupWriter, Record};
use fieldsync_core::storage::{KvBackend, KvOp, KvStorage, StorageError};
use serde::{Deserialize, Serialize};

use crate::auth::SECRET_FILE_NAME;

/// The files of the data directory a backup carries besides the store: the dev token secret (old
/// tokens verify after a restore) and the metrics token (Prometheus goes on scraping). A restore
/// writes no other name.
const KEPT_FILES: [&str; 2] = [SECRET_FILE_NAME, crate::metrics::TOKEN_FILE_NAME];
use crate::auth::dev_secret::{create_private, sync_dir, write_private_file};
use crate::store::{DEFAULT_MIN_FREE_BYTES, SledKv};

/// Bytes of keys and values restored per batch.
const RESTORE_BATCH_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BackupFailure {
    #[error(transparent)]
    Format(#[from] BackupError),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0} is not empty: a restore goes into a new data directory")]
    NotEmpty(PathBuf),
    #[error("the backup holds a file {0:?}, which is not one of a data directory")]
    UnknownFile(String),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> BackupFailure + '_ {
    move |source| BackupFailure::Io { path: path.to_path_buf(), source }
}

/// What a backup wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupReport {
    pub file: PathBuf,
    #[serde(flatten)]
    pub summary: BackupSummary,
    /// How long the store was held (writes waited) and the file written.
    pub millis: u64,
}

/// What a restore wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreReport {
    #[serde(flatten)]
    pub summary: BackupSummary,
    /// Each team with its feed head after the restart.
    pub teams: Vec<(String, u64)>,
    pub millis: u64,
}

/// Writes a backup of `kv` (and of `data_dir`'s token secret, if it has one) to `out`, which must
/// not exist. Writes wait while the store is read; reads go on.
pub fn backup(kv: &dyn KvBackend, data_dir: &Path, out: &Path) -> Result<BackupReport, BackupFailure> {
    let started = Instant::now();
    if out.exists() {
        return Err(BackupFailure::Io {
            path: out.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "a file is already there"),
        });
    }
    let partial = partial_name(out);
    let written = write_backup(kv, data_dir, &partial).and_then(|summary| {
        std::fs::rename(&partial, out).map_err(io_at(out))?;
        if let Some(dir) = out.parent() {
            sync_dir(dir);
        }
        Ok(summary)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let summary = written?;
    let millis = started.elapsed().as_millis() as u64;
    tracing::info!(file = %out.display(), pairs = summary.pairs, bytes = summary.bytes, millis, "backup written");
    Ok(BackupReport { file: out.to_path_buf(), summary, millis })
}

fn partial_name(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    out.with_file_name(name)
}

fn write_backup(kv: &dyn KvBackend, data_dir: &Path, partial: &Path) -> Result<BackupSummary, BackupFailure> {
    let file = create_private(partial).map_err(io_at(partial))?;
    let mut writer = BackupWriter::new(BufWriter::with_capacity(1 << 20, file))?;
    let mut failed = None;
    kv.export(&mut |k, v| {
        writer.pair(k, v).map_err(|e| {
            let msg = e.to_string();
            failed = Some(e);
            StorageError::Backend(msg)
        })
    })
    .map_err(|e| failed.take().map(BackupFailure::from).unwrap_or(BackupFailure::Storage(e)))?;
    for name in KEPT_FILES {
        let path = data_dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => writer.file(name, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&path)(e)),
        }
    }
    let (out, summary) = writer.finish()?;
    let file = out.into_inner().map_err(|e| io_at(partial)(e.into_error()))?;
    file.sync_all().map_err(io_at(partial))?;
    Ok(summary)
}

/// Restores the backup `file` into `data_dir`, which must be empty or absent; on any error what
/// was written is removed.
pub fn restore(file: &Path, data_dir: &Path) -> Result<RestoreReport, BackupFailure> {
    let started = Instant::now();
    if std::fs::read_dir(data_dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
        return Err(BackupFailure::NotEmpty(data_dir.to_path_buf()));
    }
    let input = std::fs::File::open(file).map_err(io_at(file))?;
    let created = !data_dir.exists();
    let file_bytes = input.metadata().map_err(io_at(file))?.len();
    std::fs::create_dir_all(data_dir).map_err(io_at(data_dir))?;
    let restored = restore_into(BufReader::with_capacity(1 << 20, input), data_dir);
    if restored.is_err() {
        // The directory was absent or empty: everything in it is ours.
        if created {
            let _ = std::fs::remove_dir_all(data_dir);
        } else if let Ok(entries) = std::fs::read_dir(data_dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let _ =
                    if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            }
        }
    }
    let (mut summary, teams) = restored?;
    summary.bytes = file_bytes;
    let millis = started.elapsed().as_millis() as u64;
    tracing::info!(dir = %data_dir.display(), pairs = summary.pairs, millis, "backup restored");
    Ok(RestoreReport { summary, teams, millis })
}

fn restore_into(
    input: impl std::io::Read,
    data_dir: &Path,
) -> Result<(BackupSummary, Vec<(String, u64)>), BackupFailure> {
    let kv = SledKv::open(data_dir, 64 * 1024 * 1024, DEFAULT_MIN_FREE_BYTES)?;
    let mut summary = BackupSummary::default();
    let (mut batch, mut batch_bytes) = (Vec::new(), 0usize);
    for record in BackupReader::new(input)? {
        match record? {
            Record::Pair(k, v) => {
                batch_bytes += k.len() + v.len();
                summary.pairs += 1;
                batch.push(KvOp::Put(k, v));
                if batch_bytes >= RESTORE_BATCH_BYTES {
                    kv.apply(std::mem::take(&mut batch))?;
                    batch_bytes = 0;
                }
            }
            Record::File(name, bytes) if KEPT_FILES.contains(&name.as_str()) => {
                let path = data_dir.join(&name);
                write_private_file(&path, &bytes).map_err(io_at(&path))?;
                summary.files += 1;
            }
            Record::File(name, _) => return Err(BackupFailure::UnknownFile(name)),
        }
    }
    kv.apply(batch)?;
    // Only a whole, checked backup gets here: its feeds restart past every cursor handed out.
    let storage = KvStorage::new(kv);
    let teams = storage.restart_feeds()?;
    storage.backend().flush()?;
    sync_dir(data_dir);
    Ok((summary, teams))
}
