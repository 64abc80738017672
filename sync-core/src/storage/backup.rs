//! The backup file: every key-value pair of a store, taken as one consistent state
//! ([`KvBackend::export`]), plus the few files of a data directory the store needs beside it (the
//! development token secret), closed by a checksum over everything before it.
//!
//! ```text
//! "FSBACKUP" · version u32
//! record*   : 1 · key len u32 · key · value len u32 · value       (a pair)
//!           | 2 · name len u16 · name · len u32 · bytes           (a file)
//! end       : 0 · pairs u64 · files u64 · SHA-256 of every byte up to and with the 0
//! ```
//!
//! Numbers are big-endian. A reader yields records as it reads them and fails on the first thing
//! out of place — a length past its bound, a file ending early, a checksum that does not match — so
//! a restore can write as it reads and throw the lot away on an error.
//!
//! ```
//! use fieldsync_core::storage::backup::{BackupReader, BackupWriter, Record};
//!
//! let mut w = BackupWriter::new(Vec::new())?;
//! w.pair(b"h/demo", &7u64.to_be_bytes())?;
//! w.file("jwt-secret", b"s3cret")?;
//! let (bytes, summary) = w.finish()?;
//! assert_eq!((summary.pairs, summary.files), (1, 1));
//!
//! let records: Vec<Record> = BackupReader::new(&bytes[..])?.collect::<Result<_, _>>()?;
//! assert_eq!(records[0], Record::Pair(b"h/demo".to_vec(), 7u64.to_be_bytes().to_vec()));
//!
//! let mut damaged = bytes.clone();
//! damaged[12] ^= 1;
//! assert!(BackupReader::new(&damaged[..])?.any(|r| r.is_err()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"FSBACKUP";
const VERSION: u32 = 1;
const TAG_END: u8 = 0;
const TAG_PAIR: u8 = 1;
const TAG_FILE: u8 = 2;

/// Longest key a backup may hold (the store's keys are ids joined by `/`, far shorter).
pub const MAX_KEY_BYTES: usize = 64 * 1024;
/// Largest value or file a backup may hold: a document compacted to one chunk is one value.
pub const MAX_VALUE_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("reading or writing the backup: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a fieldsync backup (it does not start with FSBACKUP)")]
    NotABackup,
    #[error("backup version {0} is not one this build reads (it reads {VERSION})")]
    Version(u32),
    #[error("the backup ends before its end record: it was cut short")]
    Truncated,
    #[error("the backup is damaged: {0}")]
    Damaged(String),
}

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct BackupSummary {
    pub pairs: u64,
    pub files: u64,
    /// Bytes of the backup file.
    pub bytes: u64,
}

/// One record of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Pair(Vec<u8>, Vec<u8>),
    /// A file of the data directory, by name (no directories).
    File(String, Vec<u8>),
}

/// Writes a backup to `out` (the caller makes it durable).
#[derive(Debug)]
pub struct BackupWriter<W: Write> {
    out: W,
    hash: Sha256,
    summary: BackupSummary,
}

impl<W: Write> BackupWriter<W> {
    pub fn new(out: W) -> Result<Self, BackupError> {
        let mut w = BackupWriter { out, hash: Sha256::new(), summary: BackupSummary::default() };
        w.put(MAGIC)?;
        w.put(&VERSION.to_be_bytes())?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.hash.update(bytes);
        self.out.write_all(bytes)?;
        self.summary.bytes += bytes.len() as u64;
        Ok(())
    }

    fn len32(&mut self, len: usize, max: usize, what: &str) -> Result<(), BackupError> {
        if len > max {
            return Err(BackupError::Damaged(format!("a {what} of {len} bytes is over the bound of {max}")));
        }
        self.put(&(len as u32).to_be_bytes())
    }

    pub fn pair(&mut self, key: &[u8], value: &[u8]) -> Result<(), BackupError> {
        self.put(&[TAG_PAIR])?;
        self.len32(key.len(), MAX_KEY_BYTES, "key")?;
        self.put(key)?;
        self.len32(value.len(), MAX_VALUE_BYTES, "value")?;
        self.put(value)?;
        self.summary.pairs += 1;
        Ok(())
    }

    /// A file of the data directory; `name` is a plain file name.
    pub fn file(&mut self, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        check_file_name(name)?;
        self.put(&[TAG_FILE])?;
        self.put(&(name.len() as u16).to_be_bytes())?;
        self.put(name.as_bytes())?;
        self.len32(bytes.len(), MAX_VALUE_BYTES, "file")?;
        self.put(bytes)?;
        self.summary.files += 1;
        Ok(())
    }

    /// Writes the end record; returns the writer and what was written.
    pub fn finish(mut self) -> Result<(W, BackupSummary), BackupError> {
        self.put(&[TAG_END])?;
        let digest = std::mem::take(&mut self.hash).finalize();
        let mut end = Vec::with_capacity(48);
        end.extend_from_slice(&self.summary.pairs.to_be_bytes());
        end.extend_from_slice(&self.summary.files.to_be_bytes());
        end.extend_from_slice(&digest);
        self.out.write_all(&end)?;
        self.out.flush()?;
        self.summary.bytes += end.len() as u64;
        Ok((self.out, self.summary))
    }
}

/// A file name a backup may carry: one path component, nothing that climbs out of the directory.
fn check_file_name(name: &str) -> Result<(), BackupError> {
    let plain = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        Ok(())
    } else {
        Err(BackupError::Damaged(format!("file name {name:?} is not a plain file name")))
    }
}

/// Reads a backup's records in order; the last item is an error unless the end record and its
/// checksum match what was read.
#[derive(Debug)]
pub struct BackupReader<R: Read> {
    input: R,
    hash: Sha256,
    seen: (u64, u64),
    done: bool,
}

impl<R: Read> BackupReader<R> {
    pub fn new(mut input: R) -> Result<Self, BackupError> {
        let mut head = [0u8; 12];
        read_exact(&mut input, &mut head)?;
        if &head[..8] != MAGIC {
            return Err(BackupError::NotABackup);
        }
        let version = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        if version != VERSION {
            return Err(BackupError::Version(version));
        }
        let mut hash = Sha256::new();
        hash.update(head);
        Ok(BackupReader { input, hash, seen: (0, 0), done: false })
    }

    fn take(&mut self, n: usize) -> Result<Vec<u8>, BackupError> {
        let mut buf = Vec::new();
        // Read through `take` so a length the file does not back is never allocated up front.
        (&mut self.input).take(n as u64).read_to_end(&mut buf)?;
        if buf.len() < n {
            return Err(BackupError::Truncated);
        }
        self.hash.update(&buf);
        Ok(buf)
    }

    fn len32(&mut self, max: usize, what: &str) -> Result<usize, BackupError> {
        let b = self.take(4)?;
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len > max {
            return Err(BackupError::Damaged(format!("a {what} of {len} bytes is over the bound of {max}")));
        }
        Ok(len)
    }

    fn next_record(&mut self) -> Result<Option<Record>, BackupError> {
        let tag = self.take(1)?[0];
        match tag {
            TAG_PAIR => {
                let n = self.len32(MAX_KEY_BYTES, "key")?;
                let key = self.take(n)?;
                let n = self.len32(MAX_VALUE_BYTES, "value")?;
                let value = self.take(n)?;
                self.seen.0 += 1;
                Ok(Some(Record::Pair(key, value)))
            }
            TAG_FILE => {
                let b = self.take(2)?;
                let n = u16::from_be_bytes([b[0], b[1]]) as usize;
                let name = String::from_utf8(self.take(n)?)
                    .map_err(|_| BackupError::Damaged("a file name is not UTF-8".into()))?;
                check_file_name(&name)?;
                let n = self.len32(MAX_VALUE_BYTES, "file")?;
                let bytes = self.take(n)?;
                self.seen.1 += 1;
                Ok(Some(Record::File(name, bytes)))
            }
            TAG_END => {
                let digest = std::mem::take(&mut self.hash).finalize();
                let mut end = [0u8; 48];
                read_exact(&mut self.input, &mut end)?;
                let pairs = u64::from_be_bytes(end[..8].try_into().expect("8 bytes"));
                let files = u64::from_be_bytes(end[8..16].try_into().expect("8 bytes"));
                if end[16..] != digest[..] {
                    return Err(BackupError::Damaged("the checksum does not match the contents".into()));
                }
                if (pairs, files) != self.seen {
                    return Err(BackupError::Damaged(format!(
                        "the end record counts {pairs} pairs and {files} files, the backup holds {} and {}",
                        self.seen.0, self.seen.1
                    )));
                }
                let mut extra = [0u8; 1];
                if self.input.read(&mut extra)? != 0 {
                    return Err(BackupError::Damaged("bytes follow the end record".into()));
                }
                Ok(None)
            }
            other => Err(BackupError::Damaged(format!("unknown record type {other}"))),
        }
    }
}

fn read_exact(input: &mut impl Read, buf: &mut [u8]) -> Result<(), BackupError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => BackupError::Truncated,
        _ => BackupError::Io(e),
    })
}

impl<R: Read> Iterator for BackupReader<R> {
    type Item = Result<Record, BackupError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = BackupWriter::new(Vec::new()).expect("writer");
        for i in 0..20u32 {
            w.pair(format!("m/demo/c{i}").as_bytes(), &i.to_be_bytes().repeat(i as usize)).expect("pair");
        }
        w.file("jwt-secret", b"secret bytes").expect("file");
        w.finish().expect("finish").0
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Record>, BackupError> {
        BackupReader::new(bytes)?.collect()
    }

    #[test]
    fn a_backup_reads_back_as_written() {
        let records = read_all(&sample()).expect("reads");
        assert_eq!(records.len(), 21);
        assert_eq!(records[3], Record::Pair(b"m/demo/c3".to_vec(), 3u32.to_be_bytes().repeat(3)));
        assert_eq!(records[20], Record::File("jwt-secret".into(), b"secret bytes".to_vec()));
    }

    #[test]
    fn every_single_byte_flip_and_every_cut_is_an_error() {
        let good = sample();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(read_all(&bad).is_err(), "a flip at byte {i} of {} read as good", good.len());
            assert!(read_all(&good[..i]).is_err(), "cut at {i} read as good");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(read_all(&longer).is_err(), "a byte after the end record read as good");
    }

    #[test]
    fn a_declared_length_past_the_bound_is_refused_before_it_is_read() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_be_bytes());
        bytes.push(TAG_PAIR);
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(read_all(&bytes), Err(BackupError::Damaged(_))));
    }

    #[test]
    fn file_names_that_leave_the_directory_are_refused_both_ways() {
        for name in ["../etc/passwd", "a/b", "", "..", "db\0"] {
            let mut w = BackupWriter::new(Vec::new()).expect("writer");
            assert!(w.file(name, b"x").is_err(), "{name:?} written");
        }
        // Written by hand: a reader meets a name no writer would have written.
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_be_bytes());
        bytes.push(TAG_FILE);
        bytes.extend_from_slice(&5u16.to_be_bytes());
        bytes.extend_from_slice(b"../db");
        assert!(matches!(read_all(&bytes), Err(BackupError::Damaged(_))));
    }
}
